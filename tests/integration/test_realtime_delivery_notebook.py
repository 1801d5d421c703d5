"""Chapter 1's notebook renders its figures from a result set, and fails loudly without one.

The fixture is a ``--size smoke`` run (``python -m load run 01-realtime-delivery --size smoke``)
copied without the databases, logs and Locust's own reports: each run's meta.json, summary.json,
service.json, the sampled ``*.jsonl`` and raw/ requests.
"""
import pytest
from nbclient.exceptions import CellExecutionError

from load import figures
from load.harness import ROOT

SLUG = "01-realtime-delivery"
FIXTURE = ROOT / "tests" / "fixtures" / "results" / SLUG
FIGURES = ["latency-cdf.png", "overhead.png", "short-poll-interval.png", "wan.png", "capacity.png"]
TRANSPORTS = ["short-poll", "long-poll", "sse", "websocket"]


def test_notebook_writes_the_named_figures(tmp_path):
    figures.render(SLUG, FIXTURE, tmp_path)
    for name in FIGURES:
        assert (tmp_path / name).stat().st_size > 1000, name
    claims = (tmp_path / "claims.csv").read_text().splitlines()
    assert claims[0] == "claim,article,measured,difference"
    # the fixture: short polling at two intervals, every transport at one rate and over one RTT,
    # long polling and WebSocket holding a few hundred clients
    assert sum("short polling mean latency at" in line for line in claims) == 2
    for transport in TRANSPORTS:
        assert any(line.startswith(f"{transport} median latency at") for line in claims), transport
        lost = [line for line in claims if line.startswith(f"{transport} lost/duplicated/reordered")]
        assert len(lost) == 2 + (transport in ("long-poll", "websocket")) and all(
            line.split(",")[2] == "0" for line in lost), lost      # latency, wan (+ capacity)
        wire = [line for line in claims if line.startswith(f"{transport} bytes on the wire per delivered message")]
        assert len(wire) == 1 and 100 < float(wire[0].split(",")[2]) < 2000, wire
    memory = {line.split(" server memory")[0]: float(line.split(",")[2])
              for line in claims if " server memory per client (KB)" in line}
    assert set(memory) == {"websocket", "long-poll"} and all(0 < kb < 100 for kb in memory.values()), memory
    assert any(line.startswith("server CPU per delivery: long polling / WebSocket") for line in claims)


def test_notebook_fails_loudly_when_results_are_missing(tmp_path):
    with pytest.raises(CellExecutionError, match=f"no 'latency' results under .*make run CHAPTER={SLUG}"):
        figures.render(SLUG, tmp_path / "empty", tmp_path / "figures")
    assert not list((tmp_path / "figures").glob("*.png"))
