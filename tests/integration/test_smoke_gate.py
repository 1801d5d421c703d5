"""The smoke gate: every chapter's every scenario runs at the test size (``SIZE``, smoke unless set)
into a temp folder, as a reader runs it, and its notebook renders from those fresh results; every
run is valid, failures are only the declared ones, and the figures and claims.csv exist. A scenario
that breaks ``make bench`` breaks this test."""
import os
import subprocess
import sys
import time

import pytest

from load import ROOT, chapters, contract, figures
from load.harness import Harness
from load.message_queues import scenarios as message_queues

SIZE = os.environ.get("SIZE", "smoke")
# the gate measures the embedded defaults; a BROKER_URL or DATABASE_URL from the caller's shell
# (`make servers` prints them) must not change what it runs
CLEAN_ENV = {key: value for key, value in os.environ.items() if key not in ("BROKER_URL", "DATABASE_URL", "REDIS_URL")}


@pytest.mark.timeout(240)  # a chapter's smoke size is under 60 s on a quiet machine; CI machines are busy
@pytest.mark.parametrize("slug", chapters.CHAPTERS)
def test_every_scenario_runs_and_its_notebook_renders_from_the_fresh_results(slug, tmp_path, capsys):
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "load", "run", slug, "--size", SIZE, "--results", str(tmp_path)],
                          cwd=ROOT, env=CLEAN_ENV, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    ran = time.monotonic() - started
    figures.render(slug, tmp_path / slug)
    assert contract.results_problems(slug, tmp_path / slug, SIZE) == []
    with capsys.disabled():   # the time budget, printed: 60 s a chapter at smoke size
        print(f"\n[smoke gate] {slug} at size {SIZE}: scenarios {ran:.0f} s, "
              f"with the figures {time.monotonic() - started:.0f} s")


def test_the_gate_fails_when_a_scenario_s_locustfile_is_broken(tmp_path, monkeypatch):
    broken = tmp_path / "locustfile.py"
    broken.write_text("raise RuntimeError('a locustfile broken on purpose')\n")
    monkeypatch.setattr(message_queues, "LOCUSTFILE", broken)
    scenario = message_queues.SCENARIOS["latency"]
    name, params = next(iter(scenario.plan("smoke").items()))
    with Harness("04-message-queues", "smoke", 1, tmp_path, "latency").run(name, **params) as run:
        scenario.perform(run)
    found = contract.results_problems("04-message-queues", tmp_path / "04-message-queues", "smoke")
    assert f"latency/{name}/rep-1: invalid run: Locust made no request: see locust.log" in found
    assert any("no run recorded" in problem for problem in found) and any("no figure" in p for p in found)
