"""The load's order check, one receiver on one conversation: every number once, in order.

The evidence behind "0 lost" (claim 1.3): each receiver hands every message number it gets (and
every gap marker) to its ``OrderCheck``, and every problem it returns becomes a Locust failure named
``order <transport>``. Plain Python, no Locust: the unit tests hand it a lost, a repeated and a
reordered message.
"""
from typing import Optional


class OrderCheck:
    def __init__(self, last_seq: int = 0):
        self.last_seq = last_seq   # the last number received (0 before the first)

    def gap(self, first_seq: int) -> None:
        """The server said everything before ``first_seq`` fell out of its window: not a loss."""
        self.last_seq = max(self.last_seq, first_seq - 1)

    def take(self, seq: int) -> tuple[Optional[str], bool]:
        """``(problem, new)`` for message ``seq``: ``problem`` says what is wrong (None if ``seq``
        is the next number); ``new`` says whether it is the first time this number came (a
        delivery to report) rather than a repeat."""
        expected = self.last_seq + 1
        if seq == expected:
            self.last_seq = seq
            return None, True
        if seq > expected:
            missing = f"{expected}" if seq == expected + 1 else f"{expected}-{seq - 1}"
            self.last_seq = seq
            return f"lost: got seq {seq} after {expected - 1}, never got {missing}", True
        return f"duplicate or reordered: got seq {seq} after {self.last_seq}", False
