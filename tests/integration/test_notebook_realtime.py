"""Chapter 1's notebook renders its figures from a result set, and fails loudly without one.

The fixture is a ``--size smoke`` run (``python -m load run 01-realtime-delivery --size smoke``)
copied without the databases, logs and Locust's own reports: each run's meta.json, summary.json,
service.json and raw/ requests.
"""
import pytest
from nbclient.exceptions import CellExecutionError

from load import figures
from load.harness import ROOT

SLUG = "01-realtime-delivery"
FIXTURE = ROOT / "tests" / "fixtures" / "results" / SLUG
FIGURES = ["latency-cdf.png", "overhead.png", "short-poll-interval.png"]
TRANSPORTS = ["short-poll", "long-poll", "sse", "websocket"]


def test_notebook_writes_the_named_figures(tmp_path):
    figures.render(SLUG, FIXTURE, tmp_path)
    for name in FIGURES:
        assert (tmp_path / name).stat().st_size > 1000, name
    claims = (tmp_path / "claims.csv").read_text().splitlines()
    assert claims[0] == "claim,article,measured,difference"
    # the fixture: short polling at two intervals, every transport at one rate (latency and loss)
    assert sum("short polling mean latency at" in line for line in claims) == 2
    for transport in TRANSPORTS:
        assert any(line.startswith(f"{transport} median latency at") for line in claims), transport
        lost = [line for line in claims if line.startswith(f"{transport} lost/duplicated/reordered")]
        assert lost and all(line.split(",")[2] == "0" for line in lost), lost


def test_notebook_fails_loudly_when_results_are_missing(tmp_path):
    with pytest.raises(CellExecutionError, match=f"no 'latency' results under .*make run CHAPTER={SLUG}"):
        figures.render(SLUG, tmp_path / "empty", tmp_path / "figures")
    assert not list((tmp_path / "figures").glob("*.png"))
