"""From the API to the gateways through kombu: one message per gateway, never one per device.

Each gateway consumes its own queue ``<namespace>.gw.<gateway>`` (through the default exchange, as
chapter 4's jobs do); a push to a device goes to the queue of the gateway its route names, a push to
a list to each gateway holding some of them (one message listing that gateway's share), a topic
message to every live gateway. The broker carries only a doorbell with the message in it: the store
has it already, so a message the broker drops (a dead gateway's queue, a broker restart, the
embedded filesystem broker's polling) is found by the gateway's safety net or on the device's
reconnect, never lost. Hence transient messages, no acks, and auto-deleted queues.

``BROKER_URL`` picks the broker, as everywhere in the repository: unset, kombu's filesystem
transport in the data folder (one machine, polled every 10 ms); ``redis://`` or ``amqp://`` for
several machines (``demos.message_queues.broker.connect`` makes and checks the connection).
"""
import json
import logging
import os
import socket
import threading
from typing import Callable

from kombu import Exchange, Producer, Queue

from ..brokers import BrokerUnavailable
from ..message_queues.broker import connect

DEFAULT_EXCHANGE = Exchange("")
LOG = logging.getLogger("push_at_scale.bus")

__all__ = ["BrokerUnavailable", "Bus", "broker_url"]


def broker_url(data_dir: str) -> str:
    return os.environ.get("BROKER_URL") or f"filesystem://{os.path.join(data_dir, 'broker')}"


def queue_name(namespace: str, gateway: str) -> str:
    return f"{namespace}.gw.{gateway}"


def encode(items: list) -> bytes:
    """``items``: ``[stream, seq, ts, body, urgent]`` each."""
    return json.dumps(items, separators=(",", ":")).encode()


class Bus:
    def __init__(self, url: str, namespace: str):
        self.url, self.namespace = url, namespace
        self._local = threading.local()

    def queue(self, gateway: str) -> Queue:
        name = queue_name(self.namespace, gateway)
        return Queue(name, DEFAULT_EXCHANGE, routing_key=name, durable=False, auto_delete=True)

    def _producer(self) -> Producer:
        producer = getattr(self._local, "producer", None)
        if producer is None:
            connection = connect(self.url)
            producer = self._local.producer = Producer(connection.default_channel, exchange=DEFAULT_EXCHANGE)
        return producer

    def publish(self, gateway: str, items: list) -> None:
        """Raises BrokerUnavailable if the broker does not take it (the message is stored all the same).
        A connection that broke since its last use (a broker restart) is replaced once, at once."""
        for attempt in (1, 2):
            try:
                self._producer().publish(encode(items), routing_key=queue_name(self.namespace, gateway),
                                         delivery_mode=1, content_type="application/json",
                                         content_encoding="binary", serializer=None)
                return
            except BrokerUnavailable:
                raise
            except Exception as error:   # the connection broke: a new one, once
                broken, self._local.producer = self._local.producer, None
                try:
                    broken.connection.release()
                except Exception:
                    pass
                if attempt == 2:
                    raise BrokerUnavailable(f"publishing failed: {error}") from error

    def consume_forever(self, gateway: str, on_items: Callable[[list], None], stopping: threading.Event) -> None:
        """In a thread: hand each message's items to ``on_items``; reconnect when the broker goes away."""
        queue = self.queue(gateway)
        while not stopping.is_set():
            try:
                connection = connect(self.url)
            except BrokerUnavailable as problem:
                LOG.warning("%s; trying again in 1 s", problem)
                stopping.wait(1.0)
                continue
            try:
                def on_message(message):
                    try:
                        on_items(json.loads(message.body))
                    except ValueError:
                        LOG.warning("ignoring a malformed bus message: %r", message.body[:200])
                with connection.Consumer([queue], no_ack=True, on_message=on_message):
                    while not stopping.is_set():
                        try:
                            connection.drain_events(timeout=1.0)
                        except socket.timeout:
                            pass
            except Exception as error:
                LOG.warning("bus consumer stopped (%s); reconnecting", error)
                stopping.wait(0.5)
            finally:
                connection.release()
