"""Chapter 4's notebook renders its figures and claims.csv from a result set."""

SLUG = "04-message-queues"
FIGURES = ["latency.png", "throughput.png", "threads.png", "backlog.png", "decoupling.png", "peak-shaving.png", "pubsub.png", "log-pipeline.png"]


def test_notebook_writes_the_named_figures_and_the_ledger_claims(rendered_claims):
    claims = rendered_claims(SLUG, FIGURES)
    by_id = {}
    for row in claims:
        by_id.setdefault(row["id"], []).append(row)
    assert set(by_id) == {"", "4.1", "4.2", "4.3", "4.4", "4.5", "4.6", "4.7", "4.8"}
    assert [row["article"] for row in by_id["4.1"]] == ["150", "100", "50"]
    assert [row["article"] for row in by_id["4.2"]] == ["7", "10", "20"]
    assert [row["article"] for row in by_id["4.3"]] == ["3x", "2x"]
    # the fixture's backlog: 5 and 15 registrations/s, each with arrivals, e-mail median, peak, drain
    assert len(by_id["4.4"]) == 2 * 4
    # section 2: per wiring, orders taken while inventory was down, the audit adding up, the drain
    assert [row["claim"].split(":")[0] for row in by_id["4.5"]][:2] == ["direct wiring", "queued wiring"]
    assert [row["measured"] for row in by_id["4.5"] if row["match"] == "exact"] == ["1"]
    # section 3 (smoke runs the shaved front alone): the 429's p99, flat writes, nothing lost
    assert [row["article"] for row in by_id["4.6"]] == ["< 20", "< 10", ""]
    assert [row["measured"] for row in by_id["4.6"] if row["match"] == "exact"] == ["0"]
    # section 4 (smoke: two competing consumers): their throughput, and nothing missing or repeated
    assert [(row["unit"], row["measured"] if row["match"] == "exact" else "") for row in by_id["4.7"]] == [
        ("/s", ""), ("messages", "0")]
    # section 5: the application's p99 with a slow aggregator over without, the backlog, the loss
    assert [row["unit"] for row in by_id["4.8"]] == ["x", "lines", "lines"]

