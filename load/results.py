"""Reading a chapter's results folder back: the notebooks' only way in.

A run is ``<results>/<scenario>/<run>/rep-<k>/`` with ``meta.json``, Locust's CSVs, ``raw/``
(every request, from load/recorder.py) and whatever the scenario saved (``*.json``, ``*.csv``).
"""
import csv
import json
import os
from pathlib import Path

from load.harness import ROOT, read_raw


def results_dir(slug: str) -> Path:
    """``RESULTS_DIR`` if set, else ``results/<slug>`` when it holds runs, else the committed reference."""
    if os.environ.get("RESULTS_DIR"):
        return Path(os.environ["RESULTS_DIR"])
    fresh = ROOT / "results" / slug
    if any(fresh.glob("*/*/rep-*/meta.json")):
        return fresh
    return ROOT / "chapters" / slug / "reference"


def figures_dir(results: Path) -> Path:
    folder = Path(os.environ.get("FIGURES_DIR") or results / "figures")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def load_runs(results: Path, scenario: str, *, command: str = "") -> list[dict]:
    """Every repetition of every run of ``scenario``: meta.json plus summary.json as "summary".

    Raises FileNotFoundError, saying how to produce the data, when there is none."""
    runs = []
    for meta_path in sorted(Path(results).glob(f"{scenario}/*/rep-*/meta.json")):
        run = json.loads(meta_path.read_text())
        run["dir"] = meta_path.parent
        summary = meta_path.parent / "summary.json"
        run["summary"] = json.loads(summary.read_text()) if summary.exists() else {}
        runs.append(run)
    if not runs:
        hint = command or f"python -m load run <chapter> --scenario {scenario}"
        raise FileNotFoundError(f"no '{scenario}' results under {results}: produce them with `{hint}`")
    return runs


def response_times_ms(run: dict, name: str | None = None) -> list[float]:
    """Every successful request's response time (ms) in a run, from the raw record."""
    return [row["response_time_ms"] for row in read_raw(Path(run["dir"], "raw"))
            if row["ok"] and (name is None or row["name"] == name)]


def read_samples(run: dict, name: str = "samples") -> list[dict]:
    """What ``Run.sampling`` recorded during a run: one dict per sample, failed samples left out."""
    path = Path(run["dir"], f"{name}.jsonl")
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [row for row in rows if "error" not in row]


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def read_json(path: Path):
    return json.loads(Path(path).read_text())

