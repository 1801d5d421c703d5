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


class NotRun(FileNotFoundError):
    """The scenario was skipped: this machine lacks a server or root it needs (the message says
    which, and how to get it). A notebook catches it and draws ``not_run(ax, error)`` instead."""


def load_runs(results: Path, scenario: str, *, command: str = "") -> list[dict]:
    """Every repetition of every run of ``scenario``: meta.json plus summary.json as "summary".

    Raises NotRun when the scenario was skipped for a missing server or root, FileNotFoundError
    (saying how to produce the data) when there is none."""
    runs = []
    for meta_path in sorted(Path(results).glob(f"{scenario}/*/rep-*/meta.json")):
        run = json.loads(meta_path.read_text())
        run["dir"] = meta_path.parent
        summary = meta_path.parent / "summary.json"
        run["summary"] = json.loads(summary.read_text()) if summary.exists() else {}
        runs.append(run)
    skipped = Path(results) / scenario / "skipped.json"
    if not runs and skipped.exists():
        raise NotRun(f"'{scenario}' not run: {'; '.join(json.loads(skipped.read_text())['missing'])}")
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


# --- repetitions ----------------------------------------------------------------------------

def per_repetition(runs: Iterable[dict], keys: tuple, measure) -> list[dict]:
    """One row per value of the params ``keys`` (e.g. ``("rate", "transport")``): those params,
    ``runs`` (its repetitions, in order) and, for every name ``measure(run)`` returns, the list of
    its values, one per repetition, to summarise with ``spread``. Rows in the order of ``keys``."""
    groups: dict[tuple, list[dict]] = {}
    for run in runs:
        groups.setdefault(tuple(run["params"][key] for key in keys), []).append(run)
    rows = []
    for values in sorted(groups):
        reps = sorted(groups[values], key=lambda run: run.get("repetition", 1))
        row = {**dict(zip(keys, values)), "runs": reps}
        for rep in reps:
            for name, value in measure(rep).items():
                row.setdefault(name, []).append(value)
        rows.append(row)
    return rows


def paired_ratios(numerator: dict, denominator: dict, metric: str) -> list[float]:
    """``metric`` of one ``per_repetition`` row over another's, repetition by repetition (only
    the repetitions both have): the spread of a ratio, not the ratio of two medians."""
    def by_rep(row):
        return {run.get("repetition", 1): value for run, value in zip(row["runs"], row[metric])}
    top, bottom = by_rep(numerator), by_rep(denominator)
    return [top[rep] / bottom[rep] if bottom[rep] else math.nan for rep in sorted(top) if rep in bottom]


def repetitions(runs: Iterable[dict]) -> int:
    """How many repetitions the most repeated run has."""
    counts: dict[str, int] = {}
    for run in runs:
        counts[run["run"]] = counts.get(run["run"], 0) + 1
    return max(counts.values(), default=0)


# --- figure helpers (the notebook makes the figure; these take it) --------------------------

NOISY_HATCH = "//"


def machine_line(runs: list[dict]) -> str:
    """Where and how the runs were measured, for a figure's title: cores, CPU, commit, size,
    repetitions."""
    meta = runs[0]
    machine, count = meta["machine"], repetitions(runs)
    return (f"{machine['cpu_count']} cores {machine['cpu_model']}, commit {str(meta['git']['commit'])[:8]}, "
            f"size {meta['size']}, {count} repetition{'s' if count != 1 else ''}")


def marked(runs: Iterable[dict], label: str) -> str:
    """``label``, saying so when a repetition's load generator fell behind (see meta.json)."""
    return label if all(run.get("valid", True) for run in runs) else f"{label} [INVALID run]"


def noisy_note(summary: Spread, digits: int = 0, unit: str = "") -> str:
    """"noisy: 13x-71x over 3 runs" when the repetitions span a factor of two, else ""."""
    if not summary.noisy:
        return ""
    return (f"noisy: {_format(summary.low, digits)}{unit}-{_format(summary.high, digits)}{unit} "
            f"over {summary.runs} runs")


def quoted(summary: Spread, digits: int = 1, unit: str = "") -> str:
    """A number for a label: the median, with its range when there are several repetitions, or
    marked noisy when they span a factor of two ("8.3 ms (7.9-8.6 ms over 3 runs)")."""
    text = f"{_format(summary.median, digits)}{unit}"
    if summary.noisy:
        return f"{text} ({noisy_note(summary, digits, unit)})"
    if summary.runs > 1:
        return f"{text} ({_format(summary.low, digits)}{unit}-{_format(summary.high, digits)}{unit} " \
               f"over {summary.runs} runs)"
    return text


def hatch_noisy(bars, summaries: Iterable[Spread]) -> None:
    """Hatch the bars whose repetitions span a factor of two."""
    for bar, summary in zip(bars, summaries):
        if summary is not None and summary.noisy:
            bar.set_hatch(NOISY_HATCH)


def median_bars(ax, xs, summaries: Iterable[Spread], width: float = 0.8, **style):
    """Bars at the medians, the range over repetitions as error bars, hatched when noisy."""
    summaries = list(summaries)
    bars = ax.bar(list(xs), [s.median for s in summaries], width, **style)
    hatch_noisy(bars, summaries)
    range_bars(ax, xs, summaries)
    return bars


def range_bars(ax, xs, summaries: Iterable[Spread], **style):
    """The range over repetitions as an error bar around each median (none for a single run)."""
    shown = [(x, s) for x, s in zip(xs, summaries) if s.runs > 1]
    if not shown:
        return None
    return ax.errorbar([x for x, _ in shown], [s.median for _, s in shown],
                       yerr=[[s.median - s.low for _, s in shown], [s.high - s.median for _, s in shown]],
                       **{"fmt": "none", "ecolor": "k", "capsize": 3, **style})


def cdf(ax, values: Iterable[float], **style):
    """The empirical CDF of ``values`` as a line."""
    ordered = sorted(values)
    return ax.plot(ordered, [(i + 1) / len(ordered) for i in range(len(ordered))], **style)


def reference_line(ax, value: float, label: str, *, vertical: bool = False, span=None, **style):
    """The article's (or the issue's) number as a labelled dashed line: horizontal at ``value``
    (only over ``span=(x0, x1)`` when given, e.g. one bar), or vertical."""
    style = {"color": "k", "linestyle": "--", "linewidth": 1, "label": label, **style}
    if vertical:
        return ax.axvline(value, **style)
    if span is not None:
        return ax.plot(list(span), [value, value], **style)
    return ax.axhline(value, **style)


def save(fig, folder: Path, name: str) -> Path:
    path = Path(folder) / name
    fig.savefig(path, dpi=110, bbox_inches="tight")
    print("wrote", path)
    return path


def not_run(ax, error: Exception) -> None:
    """An empty panel that says the scenario was not run on this machine, and why."""
    ax.text(0.5, 0.5, f"not run\n{error}", ha="center", va="center", wrap=True, fontsize=9,
            transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])
