"""The queued variant's worker: takes e-mail and SMS jobs off the queue and sends them.

At-least-once: a job is acknowledged only after the provider has sent it, so a worker that dies
mid-job leaves it to be delivered again (on RabbitMQ at once, on Redis after the visibility
timeout). The idempotency key makes that second delivery harmless. One job at a time
(prefetch 1): a worker holds no more unacknowledged jobs than it is working on.
A job is sent only to its user as committed: the jobs are published inside the user's transaction,
so a job can arrive a moment before its user is committed (it goes back to the queue for a moment),
or stray (the publish outlived the 503 that rolled its user back: the user never appears, or on
SQLite the id goes to the next user, with another address). A stray job is dropped, not sent.
A broker that goes away (a restart, a crash) costs the worker its connection, not its life: it
says so, reconnects every half second until the broker answers, and consumes again; the job it
held unacknowledged is the broker's to deliver again.
Run: python -m demos.message_queues.worker
"""
import argparse
import signal
import socket
import sys
import time

from .app import build_services
from .broker import BrokerUnavailable, connect, queues
from .settings import Settings

RECONNECT_EVERY_S = 0.5
STRAY_AFTER_S = 10.0   # a job whose user is still not committed this long after its publish is stray


def main() -> None:
    parser = argparse.ArgumentParser(description="Send the welcome e-mails and SMS from the queue.")
    # fault injection: time for a test (or a reader) to kill the worker at the worst moments
    parser.add_argument("--hold-before-send", type=float, default=0.0, metavar="SECONDS",
                        help="wait this long after taking a job, before sending it")
    parser.add_argument("--hold-before-ack", type=float, default=0.0, metavar="SECONDS",
                        help="wait this long after sending, before the ack")
    args = parser.parse_args()
    settings = Settings.from_env()
    services = build_services(settings)
    providers = {"email": services.email, "sms": services.sms}
    try:
        connection = connect(settings.broker_url, settings.visibility_timeout_s)
    except BrokerUnavailable as problem:
        sys.exit(f"error: {problem}")

    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))

    def handle(job, message):
        provider = providers.get(job.get("channel")) if isinstance(job, dict) else None
        if (provider is None or not isinstance(job.get("user_id"), int)
                or not isinstance(job.get("published_at"), (int, float))):
            print(f"rejecting malformed job {job!r}", flush=True)
            message.reject()
            return
        contact = services.database.contact(job["user_id"])
        if contact is None and time.time() - job["published_at"] < STRAY_AFTER_S:
            time.sleep(0.05)                    # its user's transaction has not committed yet
            message.requeue()
            return
        if contact is None or job.get("to") != contact[0 if job["channel"] == "email" else 1]:
            print(f"dropping stray job {job.get('key')}: user {job['user_id']} is not "
                  f"{job.get('to')!r} (its registration was rolled back)", flush=True)
            message.ack()
            return
        if args.hold_before_send:
            print(f"took {job['key']}, holding {args.hold_before_send} s before sending", flush=True)
            time.sleep(args.hold_before_send)
        provider.send(job["to"], job["key"])
        if args.hold_before_ack:
            print(f"sent {job['key']}, holding {args.hold_before_ack} s before the ack", flush=True)
            time.sleep(args.hold_before_ack)
        message.ack()

    job_queues = list(queues(settings.queue_prefix).values())
    while not stopping:   # SIGTERM: finish the job in hand, then stop
        lost = connection.connection_errors + connection.channel_errors + (OSError,)
        try:
            with connection:
                consume(connection, job_queues, handle, stopping)
        except lost as error:
            print(f"lost the broker ({str(error).strip() or type(error).__name__}): reconnecting", flush=True)
            connection = reconnect(settings, stopping)
    print("worker stopped", flush=True)


def consume(connection, job_queues: list, handle, stopping: list, poll_s: float = 1.0) -> None:
    """Consume until ``stopping`` is non-empty, looking at it every ``poll_s`` while idle."""
    with connection.Consumer(job_queues, callbacks=[handle], accept=["json"], prefetch_count=1):
        print(f"worker ready: consuming {', '.join(q.name for q in job_queues)} "
              f"from {connection.as_uri()}", flush=True)
        while not stopping:
            try:
                connection.drain_events(timeout=poll_s)
            except socket.timeout:
                connection.heartbeat_check()


def reconnect(settings: Settings, stopping: list):
    """A new connection once the broker answers again (None if told to stop first)."""
    while not stopping:
        try:
            return connect(settings.broker_url, settings.visibility_timeout_s)
        except BrokerUnavailable:
            time.sleep(RECONNECT_EVERY_S)
    return None


if __name__ == "__main__":
    main()
