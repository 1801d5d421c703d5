"""Chapter 6's notebook renders its figures and claims.csv from a result set, and, where the
failover scenario was skipped (no root, nginx or keepalived), says so instead of failing."""
import json
import shutil

from load import ROOT, figures
from load.results import read_claims

SLUG = "06-high-availability"
FIGURES = ["backend-death.png", "failover-timeline.png", "failover-gaps.png"]


def test_notebook_writes_the_named_figures_and_the_ledger_claims(rendered_claims):
    claims = rendered_claims(SLUG, FIGURES)
    by_id = {}
    for row in claims:
        by_id.setdefault(row["id"], []).append(row)
    assert set(by_id) == {"", "6.1", "6.2"}
    assert by_id["6.1"][0]["measured"] == "0" and by_id["6.1"][0]["match"] == "exact"
    assert [row["claim"] for row in by_id["6.2"]] == [
        "fault to first request served by the backup, nginx-kill, vrrp3-fast"]


def test_a_skipped_failover_renders_as_not_run(tmp_path):
    results = tmp_path / "results"
    shutil.copytree(ROOT / "tests" / "fixtures" / "results" / SLUG, results)
    shutil.rmtree(results / "failover")
    (results / "failover").mkdir()
    (results / "failover" / "skipped.json").write_text(json.dumps(
        {"size": "smoke", "missing": ["root (network namespaces): run it as root, e.g. `sudo make bench`"]}))
    figures.render(SLUG, results, tmp_path / "figures")
    assert all((tmp_path / "figures" / name).stat().st_size > 1000 for name in FIGURES)
    assert {row["id"] for row in read_claims(tmp_path / "figures" / "claims.csv")} == {"6.1"}
