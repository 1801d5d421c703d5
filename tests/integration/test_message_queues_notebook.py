"""Chapter 4's notebook renders its figures and claims.csv from a result set."""
from load import figures
from load.harness import ROOT
from load.results import CLAIM_COLUMNS, read_claims

SLUG = "04-message-queues"
FIXTURE = ROOT / "tests" / "fixtures" / "results" / SLUG
FIGURES = ["latency.png", "throughput.png", "threads.png", "backlog.png"]


def test_notebook_writes_the_named_figures_and_the_ledger_claims(tmp_path):
    figures.render(SLUG, FIXTURE, tmp_path)
    for name in FIGURES:
        assert (tmp_path / name).stat().st_size > 1000, name
    claims = read_claims(tmp_path / "claims.csv")
    assert list(claims[0]) == CLAIM_COLUMNS
    assert all(row["scenario"] and row["size"] == "smoke" and row["runs"] == "1" for row in claims)
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

