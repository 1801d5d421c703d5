"""Chapter 2's notebook renders its figures and claims.csv from the smoke fixture."""

SLUG = "02-push-at-scale"
FIGURES = ["fanout.png", "connections.png", "heartbeat.png", "unicast.png", "extrapolation.png"]


def test_notebook_writes_the_named_figures_and_the_ledger_claims(rendered_claims):
    claims = rendered_claims(SLUG, FIGURES)
    ids = {row["id"] for row in claims}
    assert {"2.1", "2.2", "2.3", "2.4"} <= ids
    exact = [row for row in claims if row["match"] == "exact" and row["claim"].startswith("duplicated")]
    assert exact and all(row["measured"] == "0" for row in exact)
