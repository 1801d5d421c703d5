"""Fan-out across processes: the broker is only a doorbell, the store is the truth.

Why the default is in-process. With one process a stored message wakes its waiters in the same
call (``Hub.send``): no hop, no polling, no server to install. But one process under gevent runs
on one core, and only the process that stored a message knows it is there.

With ``BROKER_URL`` set, several processes (or machines) share the clients. After each commit a
process publishes "conversation C has message N" (the message comes along) to a fanout exchange;
each process consumes it on its own exclusive, auto-deleted queue in one greenlet and hands the
message to its local waiters as a local send would (``Hub.heard``). The price: one broker hop
and a server to run (Redis or RabbitMQ: ``make servers``). On loopback the hop is a fraction of a
millisecond for the broker itself; through kombu's envelope and the other process's wake-up, a
WebSocket client of the other process got a message about 0.9 ms later than one of the sending
process (medians, Redis and RabbitMQ alike, on a busy 2-core machine).

Why the store stays the source of truth. Doorbells from different processes can arrive out of
order, and some never arrive: Redis pub/sub is at most once (a listener that is reconnecting
misses what was published meanwhile), and a process can die between its commit and its publish.
So a doorbell carries nothing the store does not have. A process that hears of N while it has
published only up to M reads M+1..N from the store (committed: numbers are handed out in commit
order) and publishes them in order; N <= M is a duplicate and dropped. Once a second
(``CHECK_INTERVAL_S``) each channel's ``last_seq`` is compared with the store's, so a lost
doorbell delays a message by at most that, and a broker outage turns delivery into one-second
polling instead of losing anything. Nothing is acknowledged or persisted on the broker: messages
are transient, consumed without acks, and a dead process's queue goes with it.
"""
import itertools
import json
import logging
import os
import secrets
import socket
from typing import Optional

import gevent
from gevent.lock import Semaphore
from kombu import Connection, Consumer, Exchange, Producer, Queue

from ..brokers import BrokerUnavailable, checked
from .hub import Hub
from .store import Message

EXCHANGE = Exchange("realtime_delivery.doorbell", type="fanout", durable=False, auto_delete=False,
                    delivery_mode="transient")
CHECK_INTERVAL_S = 1.0       # the safety net: a lost doorbell delays delivery by at most this
RECONNECT_INTERVAL_S = 1.0
CONTENT = {"content_type": "application/x-doorbell", "content_encoding": "binary"}   # no serializer
UNSET_MEANS = "to serve from one process, with in-process fan-out"
LOG = logging.getLogger("realtime_delivery.fanout")

__all__ = ["BrokerUnavailable", "Fanout", "check_reachable"]


def connect(broker_url: str) -> Connection:
    """A connection that has answered, else BrokerUnavailable saying what to do."""
    return checked(Connection(broker_url), broker_url, UNSET_MEANS)


def check_reachable(broker_url: str) -> None:
    """Fail early (BrokerUnavailable) if the broker does not answer: the server's parent process
    asks before it forks its workers, then closes the connection (none is shared across a fork)."""
    connect(broker_url).release()


def doorbell(origin: bytes, conversation: str, message: Message) -> bytes:
    """``origin \\n conversation \\n seq \\n message JSON``: split without parsing JSON, and the JSON
    the clients get is sent as it is."""
    return b"%s\n%s\n%d\n%s" % (origin, conversation.encode(), message.seq, message.json.encode())


def message_from(seq: int, payload: bytes) -> Message:
    fields = json.loads(payload)
    message = Message(seq, fields["sender"], fields["body"], fields["sent_at"], fields.get("client_ts"))
    message.__dict__["json"] = payload.decode()   # the cached_property, filled: no second dumps
    return message


class Fanout:
    """Rings the other processes' doorbells after this process's sends, and hears theirs.

    ``Fanout(hub, broker_url).start()``; both connections are made (and checked) in the
    constructor, so an unreachable broker fails there."""

    def __init__(self, hub: Hub, broker_url: str):
        self.hub, self.broker_url = hub, broker_url
        self.origin = f"{socket.gethostname()}.{os.getpid()}.{secrets.token_hex(3)}".encode()
        self.own = self.origin + b"\n"
        self.queue = Queue(f"realtime_delivery.doorbell.{self.origin.decode()}", EXCHANGE,
                           exclusive=True, auto_delete=True, durable=False)
        self.publish_lock = Semaphore()   # one kombu channel: one publish at a time (AMQP frames)
        self.publishing: Optional[Connection] = connect(broker_url)
        self.producer: Optional[Producer] = Producer(self.publishing.default_channel, exchange=EXCHANGE)
        self.listening = connect(broker_url)
        self.greenlets: list = []

    def start(self) -> "Fanout":
        self.hub.announce = self.ring
        self.greenlets = [gevent.spawn(self.listen_forever), gevent.spawn(self.check_forever)]
        return self

    def stop(self) -> None:
        self.hub.announce = None
        gevent.killall(self.greenlets)
        for connection in (self.publishing, self.listening):
            if connection is not None:
                connection.release()

    # ---- after a local send (Hub.announce)

    def ring(self, conversation: str, message: Message) -> None:
        """Tell the other processes; on failure, count it and leave it to their safety net."""
        producer = self.producer
        if producer is None:   # reconnecting
            self.hub.stats["doorbells.not_rung"] += 1
            return
        with self.publish_lock:
            try:
                producer.publish(doorbell(self.origin, conversation, message), routing_key="", **CONTENT)
            except Exception as error:   # the broker went away: the message is stored all the same
                self.hub.stats["doorbells.not_rung"] += 1
                if self.producer is producer:
                    LOG.warning("could not ring doorbells (%s); reconnecting, the others poll the store meanwhile", error)
                    self.producer = None
                    gevent.spawn(self.reconnect_publisher)
                return
        self.hub.stats["doorbells.rung"] += 1

    def reconnect_publisher(self) -> None:
        old, self.publishing = self.publishing, None
        if old is not None:
            old.release()
        connection = self.reconnect()
        self.publishing, self.producer = connection, Producer(connection.default_channel, exchange=EXCHANGE)
        LOG.warning("ringing doorbells again")

    def reconnect(self) -> Connection:
        """A new connection, trying once a second for as long as it takes (said every 30 tries)."""
        for attempt in itertools.count():
            gevent.sleep(RECONNECT_INTERVAL_S)
            try:
                return connect(self.broker_url)
            except BrokerUnavailable as problem:
                if attempt % 30 == 0:
                    LOG.warning("%s; trying again every %g s", problem, RECONNECT_INTERVAL_S)

    # ---- the other processes' sends

    def on_doorbell(self, delivery) -> None:
        body = delivery.body
        if body.startswith(self.own):
            return   # ours: published here already
        try:
            _, conversation, seq, payload = body.split(b"\n", 3)
            seq = int(seq)
            message = message_from(seq, payload)
        except (ValueError, KeyError, TypeError) as error:
            LOG.warning("ignoring a malformed doorbell (%s): %r", error, body[:200])
            return
        self.hub.stats["doorbells.heard"] += 1
        self.hub.heard(conversation.decode(), seq, message)

    def listen_forever(self) -> None:
        """Consume the doorbells; if the broker goes away, reconnect (the safety net covers the hole)."""
        while True:
            connection = self.listening
            try:
                with Consumer(connection, [self.queue], no_ack=True, on_message=self.on_doorbell):
                    while True:
                        try:
                            connection.drain_events(timeout=CHECK_INTERVAL_S)
                        except socket.timeout:
                            pass
            except Exception as error:
                self.hub.stats["doorbells.listen_errors"] += 1
                LOG.warning("stopped hearing doorbells (%s); reconnecting, polling the store meanwhile", error)
                connection.release()
                self.listening = self.reconnect()
                LOG.warning("hearing doorbells again")

    def check_forever(self) -> None:
        """The safety net: once a second, catch every channel up with the store."""
        while True:
            gevent.sleep(CHECK_INTERVAL_S)
            try:
                behind = self.hub.catch_up_all()
            except Exception:   # e.g. the database busy for longer than its timeout: next time
                LOG.exception("checking the channels against the store failed")
                continue
            if behind:
                self.hub.stats["safety_net.catch_ups"] += behind
