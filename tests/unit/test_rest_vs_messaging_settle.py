"""The scenarios' wait for the owed e-mails: bounded, and cut short by a stall (a message lost for
good must cost the stall window, not the whole timeout), but never while the books still move."""
import itertools
import time

from load.rest_vs_messaging.stack import Stack


def stack_whose_audits_are(audits) -> Stack:
    stack = Stack.__new__(Stack)          # no services: only the audit is asked for
    stack.audit = lambda: next(audits)
    return stack


def test_a_stall_with_e_mails_missing_ends_the_wait_at_the_stall_window():
    stack = stack_whose_audits_are(itertools.repeat({"missing": 1, "attempts": 5}))
    started = time.monotonic()
    assert stack.wait_until_settled(timeout_s=60, stalled_s=0.5)["missing"] == 1
    assert time.monotonic() - started < 5


def test_books_that_keep_moving_are_waited_for_past_the_stall_window():
    # an e-mail every other audit (the audits 0.2 s apart): the books never stand still for the
    # 0.3 s window, so the wait goes on until none is missing
    moving = [{"missing": 6 - n // 2, "attempts": n // 2} for n in range(13)]
    stack = stack_whose_audits_are(itertools.chain(moving, itertools.repeat(moving[-1])))
    assert stack.wait_until_settled(timeout_s=30, quiet_s=0.01, stalled_s=0.3)["missing"] == 0


def test_without_a_stall_window_only_the_timeout_ends_the_wait():
    stack = stack_whose_audits_are(itertools.repeat({"missing": 1, "attempts": 5}))
    started = time.monotonic()
    stack.wait_until_settled(timeout_s=0.6)
    assert time.monotonic() - started >= 0.6
