"""The books count raw attempts, so a lost, an orphaned or a repeated e-mail cannot hide."""
from demos.rest_vs_messaging import books

R1, R2, GONE = "11111111-1111-1111-1111-111111111111", "22222222-2222-2222-2222-222222222222", "33333333-3333-3333-3333-333333333333"


def records(attempts):
    return {"restocks": [(R1, "p2", 1.0, 1.1), (R2, "p1", 2.0, 2.1)],
            "subscriptions": [(1, "p2"), (2, "p2"), (3, "p1")], "attempts": attempts}


def test_every_owed_email_once_balances():
    found = books.audit(records([(f"{R1}:1", 1, 1.2), (f"{R1}:2", 1, 1.3), (f"{R2}:3", 1, 2.2)]))
    assert found["ok"] and found["owed"] == found["effective"] == 3 and found["repeats"] == 0


def test_a_missing_an_orphan_and_a_repeat_are_each_counted():
    found = books.audit(records([(f"{R1}:1", 0, 1.2), (f"{R1}:1", 1, 1.3), (f"{R1}:1", 1, 1.4),
                                 (f"{R2}:3", 1, 2.2), (f"{GONE}:3", 1, 2.5)]))
    assert found["missing"] == 1            # R1:2 never accepted
    assert found["orphans"] == 1            # an e-mail for a restock inventory did not make
    assert found["repeats"] == 1 and found["refused"] == 1 and found["attempts"] == 5
    assert not found["ok"]


def test_last_email_delays_per_restock():
    rows = books.last_email_delays(records([(f"{R1}:1", 1, 1.2), (f"{R1}:2", 1, 1.5), (f"{R1}:2", 0, 9.0)]))
    assert {row["restock"]: row["last_email_at"] for row in rows} == {R1: 1.5, R2: None}
