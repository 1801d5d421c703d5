"""Chapter 1's notebook renders its figures and claims.csv from a result set.

The fixture is a ``--size smoke`` run (``python -m load run 01-realtime-delivery --size smoke``)
copied without the databases, logs and Locust's own reports: each run's meta.json, summary.json,
service.json, the sampled ``*.jsonl`` and raw/ requests. It predates the ``interval`` and
``message_bytes`` params of the latency and wan runs: the analysis falls back for it.
"""

SLUG = "01-realtime-delivery"
FIGURES = ["latency-cdf.png", "overhead.png", "short-poll-interval.png", "wan.png", "capacity.png"]
TRANSPORTS = ["short-poll", "long-poll", "sse", "websocket"]
LEDGER_IDS = {"1.1", "1.2", "1.3", "1.4", "1.5", "1.6"}


def test_notebook_writes_the_named_figures_and_the_ledger_claims(rendered_claims):
    claims = rendered_claims(SLUG, FIGURES)
    assert {row["id"] for row in claims} - {""} == LEDGER_IDS
    by_id = {ledger_id: [row for row in claims if row["id"] == ledger_id] for ledger_id in LEDGER_IDS}
    # the fixture: short polling at two intervals, every transport at one rate and over one RTT,
    # long polling and WebSocket holding a few hundred clients
    assert len(by_id["1.1"]) == 2
    exact = [row for row in claims if row["match"] == "exact"]
    assert len(exact) == 4 + 4 + 2 and all(row["measured"] == row["article"] == "0" for row in exact)  # latency, wan, capacity
    for transport in TRANSPORTS:
        wire = [row for row in by_id["1.4"] if row["claim"].startswith(f"{transport} bytes on the wire")]
        assert len(wire) == 1 and 100 < float(wire[0]["measured"]) < 2000, wire
    memory = {row["claim"].split()[0]: float(row["measured"]) for row in by_id["1.6"] if "memory" in row["claim"]}
    assert set(memory) == {"websocket", "long-poll"} and all(0 < kb < 100 for kb in memory.values()), memory
    assert [row["claim"].split(", ")[2] for row in by_id["1.5"]] == ["whole process", "delivering only"]
    assert {row["article"] for row in by_id["1.5"]} == {"5x (issue)"}

