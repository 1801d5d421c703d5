"""The chapter notebook renders its figures from a result set, and fails loudly without one."""
import pytest
from nbclient.exceptions import CellExecutionError

from load import figures
from load.harness import ROOT

FIXTURE = ROOT / "tests" / "fixtures" / "results" / "04-message-queues"
FIGURES = ["latency.png", "throughput.png", "threads.png", "backlog.png", "claims.csv"]


def test_notebook_writes_the_named_figures(tmp_path):
    figures.render("04-message-queues", FIXTURE, tmp_path)
    for name in FIGURES:
        assert (tmp_path / name).stat().st_size > 1000 or name.endswith(".csv"), name
    claims = (tmp_path / "claims.csv").read_text().splitlines()
    assert claims[0] == "claim,article,measured,difference" and len(claims) == 7


def test_notebook_fails_loudly_when_results_are_missing(tmp_path):
    with pytest.raises(CellExecutionError, match="no 'latency' results under .*make run CHAPTER=04-message-queues"):
        figures.render("04-message-queues", tmp_path / "empty", tmp_path / "figures")
    assert not list((tmp_path / "figures").glob("*.png"))
