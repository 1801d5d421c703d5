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

Each channel remembers ``last_seq``, the last number it published, and publishes only the next
one: a number that skips ahead means another process stored messages in between, and those are
read from the store and published first (they are committed: numbers are handed out in commit
order). With one process that never happens. With several (``fanout``), ``heard`` is how another
process's message arrives, ``announce`` how this process's messages leave, and ``catch_up_all``
the safety net for a doorbell that never rang.
"""
import itertools
import time
from collections import Counter, deque
from typing import Callable, Optional

from gevent.event import Event
from gevent.lock import RLock

from .store import Batch, Message, Store, UnknownConversation

RECENT_LENGTH = 256


class Channel:
    __slots__ = ("arrival", "recent", "subscribers", "last_seq")

    def __init__(self, recent_length: int, last_seq: int):
        self.arrival = Event()
        self.recent: deque = deque(maxlen=recent_length)
        self.subscribers: set = set()
        self.last_seq = last_seq   # the last message published here (the store's last when created)


class Hub:
    def __init__(self, store: Store):
        self.store = store
        self.lock = RLock()
        self.channels: dict[str, Channel] = {}
        self.recent_length = min(RECENT_LENGTH, store.window_length)
        self.stats: Counter = Counter()   # counters and gauges for GET /stats
        # called with (conversation, message) after each send, outside the lock (fanout rings the
        # other processes' doorbells); None with one process
        self.announce: Optional[Callable[[str, Message], None]] = None

    def create(self, conversation: str) -> bool:
        return self.store.create(conversation)

    def channel(self, conversation: str) -> Channel:
        """The conversation's channel; raises UnknownConversation."""
        channel = self.channels.get(conversation)
        if channel is None:
            last_seq = self.store.last_seq(conversation)
            if last_seq is None:
                raise UnknownConversation(conversation)
            channel = self.channels[conversation] = Channel(self.recent_length, last_seq)
        return channel

    def send(self, conversation: str, sender: str, body: str, client_ts: Optional[float] = None,
             client_id: Optional[str] = None) -> Message:
        """Store the message (committed), then wake its waiters and hand it to its subscribers.
        A resend (a ``client_id`` the sender used before) is stored and published only the first
        time: the original comes back, ``repeated=True``."""
        channel = self.channel(conversation)
        with self.lock:
            message = self.store.append(conversation, sender, body, client_ts, client_id=client_id)
            if message.repeated:
                self.stats["sends.repeated"] += 1
                return message
            self.stats["messages_stored"] += 1
            if message.seq == channel.last_seq + 1:
                self._publish(channel, message)
            else:   # another process stored messages since this one's last: they go first
                self._catch_up(conversation, channel)
        if self.announce is not None:
            self.announce(conversation, message)
        return message

    def heard(self, conversation: str, seq: int, message: Optional[Message] = None) -> None:
        """Another process stored message ``seq`` (``message``, if it came along): publish it
        here, after whatever this process has not published yet; a number already published is
        a duplicate and dropped. A conversation nobody here asked about is none of our business:
        its channel, once made, starts from the store."""
        channel = self.channels.get(conversation)
        if channel is None:
            return
        with self.lock:
            if seq <= channel.last_seq:
                self.stats["doorbells.duplicate"] += 1
            elif seq == channel.last_seq + 1 and message is not None:
                self._publish(channel, message)
            else:   # an earlier doorbell is late or lost: the store has them all
                self.stats["doorbells.ahead"] += 1
                self._catch_up(conversation, channel)

    def catch_up_all(self) -> int:
        """Publish what the store has beyond each channel's ``last_seq``; how many channels were behind.
        The safety net for lost doorbells: one query for all channels."""
        if not self.channels:
            return 0
        last_seqs = self.store.last_seqs(list(self.channels))
        behind = 0
        with self.lock:
            for conversation, last_seq in last_seqs.items():
                channel = self.channels[conversation]
                if last_seq > channel.last_seq:
                    behind += 1
                    self._catch_up(conversation, channel)
        return behind

    def _publish(self, channel: Channel, message: Message) -> None:
        """Hand ``message`` to this process's waiters and subscribers (hold the lock)."""
        if channel.recent and channel.recent[-1].seq != message.seq - 1:
            channel.recent.clear()   # only an unbroken run may be served from memory
        channel.recent.append(message)
        channel.last_seq = message.seq
        arrival, channel.arrival = channel.arrival, Event()
        arrival.set()
        for subscriber in list(channel.subscribers):
            subscriber.deliver(message)

    def _catch_up(self, conversation: str, channel: Channel) -> None:
        """Publish, in order, every stored message after the channel's ``last_seq`` (hold the lock).
        If some were pruned meanwhile, WebSocket subscribers see the jump and are closed (1011) to
        reconnect and be told of the gap; pollers read the gap from the store."""
        batch = self.store.read_after(conversation, channel.last_seq)
        self.stats["catch_up_reads"] += 1
        for message in batch.messages:
            self._publish(channel, message)
        if batch.last_seq > channel.last_seq:   # all of them pruned: nothing to hand out, but wake the pollers
            channel.recent.clear()
            channel.last_seq = batch.last_seq
            arrival, channel.arrival = channel.arrival, Event()
            arrival.set()

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
