"""Sections 2 and 3's rules in one process: an order's body, inventory's deduction, the flash
sale's writer and admission (demos/message_queues/messaging.py, inventory.py, flash_sale.py)."""
import threading
import time

import pytest

from demos.message_queues import flash_sale, inventory
from demos.message_queues.messaging import BadOrder, parse_order
from demos.message_queues.store import Database


@pytest.mark.parametrize("raw", [b"{", b"[]", b'{"product": "kiwi", "quantity": 1}', b'{"product": "apple", "quantity": -1}',
                                 b'{"product": "apple", "quantity": 0}', b'{"product": "apple", "quantity": 2.0}',
                                 b'{"product": "apple", "quantity": true}', b'{"product": "apple\\n", "quantity": 1}',
                                 b'{"product": "\\ud800", "quantity": 1}', b'{"product": "apple"}'])
def test_bad_orders_are_refused_with_a_reason(raw):
    with pytest.raises(BadOrder) as refused:
        parse_order(raw)
    assert str(refused.value)


def test_a_good_order():
    assert parse_order(b'{"product": "plum", "quantity": 100}') == ("plum", 100)


@pytest.fixture
def stock(tmp_path):
    database = Database(f"sqlite:///{tmp_path}/inventory.db", schema=inventory.SCHEMA)
    return inventory.Inventory(database, inventory.stock_setting("pear=10"))


def test_a_key_is_decided_once_and_the_stock_never_goes_below_zero(stock):
    assert stock.deduct("queued:1", "pear", 6) == "deducted"
    assert stock.deduct("queued:1", "pear", 6) == "deducted"          # the same order again: no change
    assert stock.deduct("queued:2", "pear", 6) == "cancelled"         # 4 left
    assert stock.deduct("queued:2", "pear", 1) == "cancelled"         # its outcome stays
    audit = stock.audit()
    assert audit["stock"]["pear"] == 4 and audit["outcomes"] == {"deducted": 1, "cancelled": 1}
    assert audit["deliveries"] == 4 and audit["redelivered"] == 2


def test_racing_orders_never_take_more_than_the_stock(stock):
    start = threading.Barrier(8)

    def buy(n):
        start.wait(timeout=10)
        for k in range(5):
            stock.deduct(f"queued:{n}-{k}", "pear", 1)
    threads = [threading.Thread(target=buy, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    audit = stock.audit()
    assert audit["stock"]["pear"] == 0 and audit["outcomes"] == {"deducted": 10, "cancelled": 30}


def test_the_writer_keeps_its_rate_and_writes_an_order_once(tmp_path):
    writer = flash_sale.Writer(Database(f"sqlite:///{tmp_path}/sale.db", schema=flash_sale.SCHEMA), rate=100)
    started = time.monotonic()
    assert [writer.write(f"{n:032x}", "apple", 1, time.time()) for n in range(10)] == [True] * 10
    assert time.monotonic() - started >= 0.09                     # ten slots of 10 ms at least
    assert writer.write(f"{0:032x}", "apple", 1, time.time()) is False
    assert flash_sale.audit(writer.database) == {"written": 10, "attempts": 11}


def test_a_busy_writer_refuses_within_the_wait(tmp_path):
    writer = flash_sale.Writer(Database(f"sqlite:///{tmp_path}/sale.db", schema=flash_sale.SCHEMA))
    with writer.lock:
        with pytest.raises(flash_sale.WriterBusy):
            writer.write("a" * 32, "apple", 1, time.time(), wait_s=0.05)


def test_admission_counts_what_it_published_until_the_broker_counts_it():
    queue = []
    admission = flash_sale.Admission(3, count=lambda: len(queue))
    assert [admission.take() for _ in range(4)] == [True, True, True, False]
    queue.extend([1, 2, 3])
    admission.refresh()
    assert not admission.take()
    queue.clear()                                                  # the consumer took them
    admission.refresh()
    assert admission.take()
    admission.give_back()
    assert admission.stats() == {"queue_length": 0, "accepted": 3, "rejected": 2}
