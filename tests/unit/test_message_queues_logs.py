"""The log aggregator counts a line once, however often the broker delivers it, and counts every delivery."""
import time

from demos.message_queues.logs import SCHEMA, Aggregator
from demos.message_queues.store import Database


def test_a_line_delivered_twice_is_counted_once_and_its_deliveries_twice(tmp_path):
    aggregator = Aggregator(Database(f"sqlite:///{tmp_path}/logs.db", schema=SCHEMA))
    error = {"id": "a1", "app": "shop", "level": "ERROR", "logged_at": time.time()}
    assert aggregator.count(error) is True
    assert aggregator.count(error) is False           # a redelivery
    assert aggregator.count({**error, "id": "a2", "level": "INFO"}) is True
    audit = aggregator.audit()
    assert (audit["lines"], audit["deliveries"]) == (2, 3)
    assert list(audit["errors_per_minute"].values()) == [1]
