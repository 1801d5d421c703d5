"""The one results library: reading a chapter's results back, one percentile and one spread for
the harness and every notebook, the ``claims.csv`` every chapter writes, and the figure helpers the
notebooks share. Notebooks only load (here), call (``load/<chapter>/analysis.py``) and plot.

A run is ``<results>/<scenario>/<run>/rep-<k>/`` with ``meta.json``, Locust's CSVs, ``raw/``
(every request, from load/recorder.py) and whatever the scenario saved (``*.json``, ``*.csv``).
Nothing here imports matplotlib: the figure helpers take the figure or axes the notebook made.
"""
import csv
import gzip
import json
import math
import os
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional

from load import ROOT


# --- one percentile, one spread -------------------------------------------------------------

def percentile(values: Iterable[float], fraction: float) -> Optional[float]:
    """Nearest rank: the smallest value with at least ``fraction`` of the values at or below it
    (index ceil(fraction * n) - 1). p50 of 1..4 is 2, p99 of 1..100 is 99, p100 is the maximum;
    None when there is no value. The harness's summaries and every figure use this one."""
    ordered = sorted(values)
    if not ordered:
        return None
    rank = math.ceil(round(fraction * len(ordered), 9))    # round: 0.07 * 100 is 7.000000000000001
    return ordered[min(len(ordered), max(1, rank)) - 1]


@dataclass(frozen=True)
class Spread:
    """A number measured once per repetition: its median and its range."""
    median: float
    low: float
    high: float
    runs: int

    @property
    def factor(self) -> float:
        """high / low: 2.0 means the repetitions disagree by a factor of two (inf across zero)."""
        if self.low > 0:
            return self.high / self.low
        return 1.0 if self.low == self.high else math.inf

    @property
    def noisy(self) -> bool:
        """True when the repetitions span a factor of two or more: do not headline this number."""
        return self.factor >= 2.0


def spread(values: Iterable[float]) -> Spread:
    """Median and range of one number over repetitions (NaN left out); ValueError when none."""
    kept = [float(value) for value in values if value is not None and not math.isnan(value)]
    if not kept:
        raise ValueError("no value to summarise")
    return Spread(statistics.median(kept), min(kept), max(kept), len(kept))


# --- claims.csv -----------------------------------------------------------------------------

CLAIM_COLUMNS = ["id", "claim", "scenario", "size", "article", "measured", "low", "high", "runs",
                 "unit", "match", "note"]


def _format(value: float, digits: int) -> str:
    return f"{value:.{digits}f}" if digits > 0 else str(int(round(value)))


class Claims:
    """The rows of a chapter's ``claims.csv``: each claim beside the article's number.

    ``id`` is the claim ledger's row in README.md (``"4.1"``; several rows may share one, e.g. one
    per interval), empty for a number the ledger does not quote. ``measured`` is the median over
    the repetitions, ``low``/``high`` their range, all written with ``digits`` decimals exactly as
    the README quotes them. ``match``: ``range`` (your run reproduces the reference when it falls
    inside the reference's range widened by 25%) or ``exact`` (counts that must be equal, such as
    messages lost: 0)."""

    def __init__(self):
        self.rows: list[dict] = []

    def add(self, claim: str, values, *, id: str = "", scenario: str = "", size: str = "",
            article="", unit: str = "", digits: int = 1, match: str = "range", note: str = "") -> Spread:
        if match not in ("range", "exact"):
            raise ValueError(f"match is 'range' or 'exact', not {match!r}")
        values = [values] if isinstance(values, (int, float)) else list(values)
        summary = spread(values)
        self.rows.append({"id": id, "claim": claim, "scenario": scenario, "size": size,
                          "article": "" if article is None else str(article),
                          "measured": _format(summary.median, digits), "low": _format(summary.low, digits),
                          "high": _format(summary.high, digits), "runs": summary.runs, "unit": unit,
                          "match": match, "note": note})
        return summary

    def write(self, path: Path) -> Path:
        with open(path, "w", newline="") as out:
            writer = csv.DictWriter(out, fieldnames=CLAIM_COLUMNS)
            writer.writeheader()
            writer.writerows(self.rows)
        return Path(path)


def read_claims(path: Path) -> list[dict]:
    """A ``claims.csv`` back, one dict per row (every value a string, as written)."""
    return read_csv(path)


# --- where results are ----------------------------------------------------------------------

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


# --- reading runs back ----------------------------------------------------------------------

def read_raw(raw_dir: Path) -> list[dict]:
    """Every request Locust made, from load/recorder.py's CSVs (one per Locust process, or gzipped).

    This, not ``locust_stats.csv``, is the record to count from: Locust writes its CSVs once a
    second and its last write can come before the final requests of the run."""
    rows = []
    paths = sorted([*Path(raw_dir).glob("requests-*.csv"), *Path(raw_dir).glob("requests-*.csv.gz")])
    for path in paths:   # a reference set keeps them gzipped
        with (gzip.open(path, "rt", newline="") if path.suffix == ".gz" else open(path, newline="")) as raw:
            for row in csv.DictReader(raw):
                rows.append({"start_time": float(row["start_time"]), "name": row["name"],
                             "response_time_ms": float(row["response_time_ms"]), "ok": row["ok"] == "1"})
    return rows


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
