"""Chapter 4's notebook renders its figures and claims.csv from a result set."""

SLUG = "04-message-queues"
FIGURES = ["latency.png", "throughput.png", "threads.png", "backlog.png"]


def test_notebook_writes_the_named_figures_and_the_ledger_claims(rendered_claims):
    claims = rendered_claims(SLUG, FIGURES)
    by_id = {}
    for row in claims:
        by_id.setdefault(row["id"], []).append(row)
    assert set(by_id) == {"", "4.1", "4.2", "4.3", "4.4"}
    assert [row["article"] for row in by_id["4.1"]] == ["150", "100", "50"]
    assert [row["article"] for row in by_id["4.2"]] == ["7", "10", "20"]
    assert [row["article"] for row in by_id["4.3"]] == ["3x", "2x"]
    # the fixture's backlog: 5 and 15 registrations/s, each with arrivals, e-mail median, peak, drain
    assert len(by_id["4.4"]) == 2 * 4
    assert not [row for row in claims if row["match"] == "exact"]      # no count in chapter 4 must be exact

