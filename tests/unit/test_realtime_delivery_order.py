"""The load's order check (load/realtime_delivery/order.py), the evidence behind "0 lost": handed a
lost, a repeated and a reordered message, it reports each, and reports a delivery only once."""
from load.realtime_delivery.order import OrderCheck


def feed(seqs, gaps=None) -> tuple[list, list]:
    check, problems, delivered = OrderCheck(), [], []
    for seq in seqs:
        if gaps and seq in gaps:
            check.gap(gaps[seq])
            continue
        problem, new = check.take(seq)
        problems.append(problem)
        if new:
            delivered.append(seq)
    return problems, delivered


def test_in_order_is_silent():
    assert feed([1, 2, 3, 4]) == ([None] * 4, [1, 2, 3, 4])


def test_a_lost_message_is_reported():
    problems, delivered = feed([1, 2, 4, 5])
    assert problems == [None, None, "lost: got seq 4 after 2, never got 3", None]
    assert delivered == [1, 2, 4, 5]
    assert feed([1, 5])[0][1] == "lost: got seq 5 after 1, never got 2-4"
    assert feed([2])[0] == ["lost: got seq 2 after 0, never got 1"]


def test_a_repeated_message_is_reported_and_not_delivered_twice():
    problems, delivered = feed([1, 2, 2, 3])
    assert problems == [None, None, "duplicate or reordered: got seq 2 after 2", None]
    assert delivered == [1, 2, 3]
    assert feed([1, 1])[0][1] == "duplicate or reordered: got seq 1 after 1"


def test_a_reordered_pair_is_reported_twice():
    problems, delivered = feed([1, 3, 2, 4])
    assert problems[1].startswith("lost: got seq 3 after 1")        # 2 had not come yet
    assert problems[2] == "duplicate or reordered: got seq 2 after 3"
    assert problems[3] is None and delivered == [1, 3, 4]


def test_a_gap_marker_is_not_a_loss():
    check = OrderCheck()
    assert check.take(1) == (None, True)
    check.gap(10)                     # 2..9 fell out of the server's window, and it said so
    assert check.take(10) == (None, True)
    check.gap(5)                      # an old marker never moves the check back
    assert check.last_seq == 10
    assert check.take(11) == (None, True)
    assert OrderCheck(last_seq=7).take(8) == (None, True)
