"""In-process fan-out: the moment a message is stored, everyone waiting on its conversation knows.

Per conversation the hub keeps
- ``arrival``: an event that long polls and SSE streams wait on; every new message sets it and
  puts a fresh one in its place, so a waiter wakes at once and then reads what is new;
- ``recent``: the last few hundred messages in memory, so that thousands of woken waiters read
  them without a database query each (anything older comes from the store);
- ``subscribers``: WebSocket connections, each handed every new message (``deliver``) to write.

``send`` stores a message and publishes it under one lock, and a WebSocket catches up and
subscribes under the same lock: so messages are published in number order and none can slip
between a client's catch-up read and its subscription. Everything runs in one process under gevent;
nothing here blocks (the store's SQLite calls are short and do not yield).
"""
import itertools
import time
from collections import Counter, deque
from typing import Optional

from gevent.event import Event
from gevent.lock import RLock

from .store import Batch, Message, Store, UnknownConversation

RECENT_LENGTH = 256


class Channel:
    __slots__ = ("arrival", "recent", "subscribers")

    def __init__(self, recent_length: int):
        self.arrival = Event()
        self.recent: deque = deque(maxlen=recent_length)
        self.subscribers: set = set()


class Hub:
    def __init__(self, store: Store):
        self.store = store
        self.lock = RLock()
        self.channels: dict[str, Channel] = {}
        self.recent_length = min(RECENT_LENGTH, store.window_length)
        self.stats: Counter = Counter()   # counters and gauges for GET /stats

    def create(self, conversation: str) -> bool:
        return self.store.create(conversation)

    def channel(self, conversation: str) -> Channel:
        """The conversation's channel; raises UnknownConversation."""
        channel = self.channels.get(conversation)
        if channel is None:
            if not self.store.exists(conversation):
                raise UnknownConversation(conversation)
            channel = self.channels[conversation] = Channel(self.recent_length)
        return channel

    def send(self, conversation: str, sender: str, body: str, client_ts: Optional[float] = None) -> Message:
        """Store the message (committed), then wake its waiters and hand it to its subscribers."""
        channel = self.channel(conversation)
        with self.lock:
            message = self.store.append(conversation, sender, body, client_ts)
            self.stats["messages_stored"] += 1
            if channel.recent and channel.recent[-1].seq != message.seq - 1:
                channel.recent.clear()   # only an unbroken run may be served from memory
            channel.recent.append(message)
            arrival, channel.arrival = channel.arrival, Event()
            arrival.set()
            for subscriber in list(channel.subscribers):
                subscriber.deliver(message)
        return message

    def after(self, conversation: str, after: int, limit: Optional[int] = None) -> Batch:
        """Everything after ``after`` (at most ``limit``): from memory if it holds it all, else the store."""
        recent = self.channel(conversation).recent
        if recent and recent[0].seq <= after + 1 and after <= recent[-1].seq:
            start = after + 1 - recent[0].seq
            stop = None if limit is None else start + limit
            return Batch(list(itertools.islice(recent, start, stop)), recent[-1].seq)
        return self.store.read_after(conversation, after, limit)

    def wait_after(self, conversation: str, after: int, timeout_s: float, limit: Optional[int] = None) -> Batch:
        """Like ``after``, but with nothing new yet, wait up to ``timeout_s`` for it (the long poll)."""
        deadline = time.monotonic() + timeout_s
        while True:
            arrival = self.channel(conversation).arrival   # taken before reading: no wake-up is missed
            batch = self.after(conversation, after, limit)
            remaining = deadline - time.monotonic()
            if batch.messages or batch.gap or remaining <= 0:
                return batch
            arrival.wait(remaining)

    def subscribe(self, conversation: str, subscriber) -> None:
        """Call with ``hub.lock`` held, right after the subscriber's catch-up read."""
        self.channel(conversation).subscribers.add(subscriber)

    def unsubscribe(self, conversation: str, subscriber) -> None:
        channel = self.channels.get(conversation)
        if channel is not None:
            channel.subscribers.discard(subscriber)
