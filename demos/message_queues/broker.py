"""The jobs queue through kombu: one URL (``BROKER_URL``) picks the broker.

- ``filesystem://<folder>`` (the default): no server, messages are files. Good for a laptop, but a
  message leaves the folder when a worker takes it: a worker killed before its ack loses it.
- ``redis://host:port/db``: unacknowledged messages come back after the visibility timeout
  (``BROKER_VISIBILITY_TIMEOUT`` seconds, 30 by default; keep it longer than any job takes).
- ``amqp://user:pass@host:port//`` (RabbitMQ): durable queues, persistent messages and publisher
  confirms; a dead worker's unacknowledged messages are requeued at once.

The queues are ``<QUEUE_PREFIX>.email`` and ``<QUEUE_PREFIX>.sms`` (``registration`` by default), so
two services (or two tests) can share one broker without taking each other's jobs.
"""
import os

from kombu import Connection, Exchange, Queue

from ..brokers import BrokerUnavailable, checked
from . import filesystem_broker

# Jobs go through the default exchange straight to a durable queue named for the channel, as in
# RabbitMQ's work-queue tutorial: no binding to lose, so a job cannot be routed to nowhere.
DEFAULT_EXCHANGE = Exchange("")
CHANNELS = ("email", "sms")
# A broker that stops answering must cost a registration about a second, not kombu's default 5 s a
# try, nor forever: a restarting RabbitMQ accepts TCP connections long before it completes the AMQP
# handshake, and a frozen one (SIGSTOP, a stalled disk) accepts them and never answers at all.
CONNECT_TIMEOUT_S = 1.0
SOCKET_TIMEOUT_S = 1.0    # any one read or write (RabbitMQ's confirm included)
REDIS_SOCKET_TIMEOUT_S = 2.0   # above kombu's 1 s BRPOP, which must not time out while a queue is empty
UNACKED_MUTEX_EXPIRE_S = 5   # Redis: how long the redelivery scan's lock outlives a dead holder


def queues(prefix: str = "registration") -> dict[str, Queue]:
    """The durable job queue of each channel: ``{"email": <prefix>.email, "sms": <prefix>.sms}``."""
    return {channel: Queue(f"{prefix}.{channel}", DEFAULT_EXCHANGE, routing_key=f"{prefix}.{channel}",
                           durable=True)
            for channel in CHANNELS}


def connect(broker_url: str, visibility_timeout_s: float = 30) -> Connection:
    """A kombu connection for ``broker_url``, checked: raises BrokerUnavailable saying what to do."""
    if broker_url.startswith("filesystem://"):
        folder = broker_url[len("filesystem://"):] or "broker"
        for sub in ("messages", "processed"):
            os.makedirs(os.path.join(folder, sub), exist_ok=True)
        connection = Connection("filesystem://", transport=filesystem_broker.Transport, transport_options={
            "data_folder_in": os.path.join(folder, "messages"),
            "data_folder_out": os.path.join(folder, "messages"),
            # taken messages are moved here (an atomic rename, so two workers never share one)
            "store_processed": True,
            "processed_folder": os.path.join(folder, "processed"),
            # exchange-to-queue bindings (fanout, direct with several queues), shared by every process
            "control_folder": os.path.join(folder, "control"),
            "polling_interval": 0.01,
        })
    elif broker_url.startswith("memory://"):
        raise BrokerUnavailable("memory:// lives inside one process; the worker is another process."
                                " Unset BROKER_URL for the embedded filesystem broker")
    elif broker_url.startswith("redis"):
        connection = Connection(broker_url, connect_timeout=CONNECT_TIMEOUT_S, transport_options={
            "socket_connect_timeout": CONNECT_TIMEOUT_S,
            "socket_timeout": REDIS_SOCKET_TIMEOUT_S,
            "visibility_timeout": visibility_timeout_s,
            "unacked_restore_throttle": 1,   # look for expired unacked messages on every idle poll
            # that look holds a Redis lock; a consumer SIGKILLed while holding it would stop every
            # redelivery for kombu's default 300 s, so the lock of a dead holder lapses in 5 s
            "unacked_mutex_expire": UNACKED_MUTEX_EXPIRE_S,
        })
    else:
        connection = Connection(broker_url, connect_timeout=CONNECT_TIMEOUT_S,
                                transport_options={"confirm_publish": True, "read_timeout": SOCKET_TIMEOUT_S,
                                                   "write_timeout": SOCKET_TIMEOUT_S})
    return checked(connection, broker_url, "to use the embedded filesystem broker")


def declare(connection: Connection, job_queues: dict[str, Queue]) -> None:
    with connection.channel() as channel:
        for queue in job_queues.values():
            queue(channel).declare()


def backlog(connection: Connection, job_queues: dict[str, Queue]) -> int:
    """Messages waiting in both queues (not counting those a worker holds unacknowledged)."""
    total = 0
    with connection.channel() as channel:
        for queue in job_queues.values():
            total += queue(channel).queue_declare(passive=True).message_count
    return total
