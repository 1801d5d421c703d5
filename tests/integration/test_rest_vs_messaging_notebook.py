"""Chapter 5's notebook renders its figures and claims.csv from a result set."""

SLUG = "05-rest-vs-messaging"
FIGURES = ["subscribers.png", "outage.png", "slow.png", "new-consumer.png", "brokers.png"]


def test_notebook_writes_the_named_figures_and_the_ledger_claims(rendered_claims):
    claims = rendered_claims(SLUG, FIGURES)
    assert {row["id"] for row in claims} == {"", "5.1", "5.2", "5.3", "5.4", "5.5"}
    assert all(row["measured"] == "0" for row in claims if row["match"] == "exact")   # nothing lost or missed
