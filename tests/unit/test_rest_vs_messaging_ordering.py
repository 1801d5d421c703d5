"""Chapter 5's ordering guard: the stock view applies an event only when its version is newer than
the one it holds, so events that arrive out of publish order (several consumers, redeliveries after
a SIGKILL) cannot put an old stock level back."""
from demos.message_queues.store import Database
from demos.rest_vs_messaging import view
from demos.rest_vs_messaging.events import SEEN_SCHEMA


def event(version: int, product: str = "p1") -> dict:
    return {"event_id": f"e-{product}-{version}", "restock": f"r-{product}-{version}", "product": product,
            "stock": 10 * version, "version": version}


def database(tmp_path) -> Database:
    return Database(f"sqlite:///{tmp_path}/analytics.db", schema=SEEN_SCHEMA.format(consumer="analytics")
                    + ";" + view.VIEW_SCHEMA)


def test_an_older_event_after_a_newer_one_is_skipped_and_a_repeat_is_recorded(tmp_path):
    db = database(tmp_path)
    outcomes = []
    for version in (1, 3, 2, 3):           # 2 comes after 3 (out of order), then 3 again (a redelivery)
        with db.transaction() as t:
            outcomes.append(view.apply(t, event(version), "c1"))
    assert outcomes == ["applied", "applied", "stale", "repeat"]
    with db.transaction() as t:
        found = view.read(t)
    assert found["view"]["p1"] == (30, 3, 20)   # the view holds version 3; the last arrival (2) would not
    counts = view.ordering(found["arrivals"], {"p1": 30}, found["view"])
    assert counts["out_of_order"] == counts["stale"] == 1 and counts["repeats"] == 1
    assert counts["view_wrong"] == 0 and counts["naive_wrong"] == 1


def test_products_are_ordered_each_on_its_own(tmp_path):
    db = database(tmp_path)
    for e in (event(2, "p1"), event(1, "p2"), event(1, "p1")):
        with db.transaction() as t:
            view.apply(t, e, "c1")
    with db.transaction() as t:
        assert {p: row[0] for p, row in view.read(t)["view"].items()} == {"p1": 20, "p2": 10}


def test_an_event_without_a_whole_version_is_malformed():
    assert view.well_formed(event(1))
    assert not view.well_formed({**event(1), "version": "2"}) and not view.well_formed({**event(1), "version": True})
