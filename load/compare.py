"""Your machine against the reference: every claim-ledger row of every chapter, side by side.

For each row of a chapter's reference ``claims.csv`` that carries a ledger id (README.md's claim
ledger), it prints and writes (``<results>/comparison.md`` and ``.csv``) the article's number, the
reference's median and range, yours, and whether yours reproduced it:

- ``range`` rows reproduce when your median falls inside the reference's range widened by 25%
  (from low - 25% of |low| to high + 25% of |high|);
- ``exact`` rows (messages lost: 0) reproduce only when equal;
- a row measured at another size than yours, or by a scenario you skipped or did not run, says so.

Reasons come only from what the runs recorded: an invalid run (and why), a full load-generator
core, or fewer cores than the reference machine.
"""
import csv
import json
from pathlib import Path

from load import ROOT
from load.harness import MAX_CORE_UTILISATION
from load.results import read_claims

WIDEN = 0.25
COLUMNS = ["id", "claim", "article", "reference", "yours", "verdict", "why"]


def reference_dir(slug: str) -> Path:
    return ROOT / "chapters" / slug / "reference"


def metas(folder: Path) -> list[dict]:
    return [json.loads(path.read_text()) for path in sorted(folder.glob("*/rep-*/meta.json"))]


def shown(row: dict) -> str:
    """``153.7 (150.2-160.0, 3 runs, default)``"""
    if row["runs"] in ("1", 1) or row["low"] == row["high"]:
        return f"{row['measured']} ({row['runs']} run{'s' if str(row['runs']) != '1' else ''}, {row['size']})"
    return f"{row['measured']} ({row['low']}-{row['high']}, {row['runs']} runs, {row['size']})"


def reproduced(reference: dict, yours: dict) -> bool:
    mine = float(yours["measured"])
    if reference["match"] == "exact":
        return mine == float(reference["measured"])
    low, high = float(reference["low"]), float(reference["high"])
    return low - WIDEN * abs(low) <= mine <= high + WIDEN * abs(high)


def reasons(reference_runs: list[dict], your_runs: list[dict]) -> str:
    """What the runs recorded that explains a difference: facts, not guesses."""
    found = []
    invalid = [run for run in your_runs if not run.get("valid", True)]
    if invalid:
        why = sorted({reason for run in invalid for reason in run.get("invalid_reasons", [])})
        found.append(f"{len(invalid)} of your runs invalid ({'; '.join(why)})")
    full = [run for run in your_runs
            if run.get("loadgen", {}).get("max_process_utilisation", 0) > MAX_CORE_UTILISATION]
    if full and not invalid:
        found.append(f"a Locust process used a full core in {len(full)} run(s)")
    cores = {run["machine"]["cpu_count"] for run in your_runs if "machine" in run}
    reference_cores = {run["machine"]["cpu_count"] for run in reference_runs if "machine" in run}
    if cores and reference_cores and max(cores) < min(reference_cores):
        found.append(f"{max(cores)} cores here, {min(reference_cores)} on the reference machine")
    return "; ".join(found)


def compare_chapter(slug: str, results: Path, reference_set: Path | None = None) -> list[dict]:
    """One row per ledger row of the chapter's reference claims.csv (``reference_set``: the
    committed ``chapters/<slug>/reference/`` unless given)."""
    reference_set = reference_set or reference_dir(slug)
    reference_path = reference_set / "figures" / "claims.csv"
    if not reference_path.exists():
        return []
    reference = read_claims(reference_path)
    if reference and "id" not in reference[0]:
        print(f"{reference_path} predates ledger ids: `make reference CHAPTER={slug}` renews it", flush=True)
        return []
    mine_path = results / slug / "figures" / "claims.csv"
    mine = {(row["id"], row["claim"]): row for row in read_claims(mine_path)} if mine_path.exists() else {}
    rows = []
    for ref in reference:
        if not ref["id"]:
            continue
        yours = mine.get((ref["id"], ref["claim"]))
        scenario_dir = results / slug / ref["scenario"]
        row = {"id": ref["id"], "claim": ref["claim"], "article": ref["article"], "reference": shown(ref),
               "yours": shown(yours) if yours else "", "verdict": "", "why": ""}
        skipped = scenario_dir / "skipped.json"
        your_runs = metas(scenario_dir)
        if skipped.exists():
            row.update(verdict="not run", why="; ".join(json.loads(skipped.read_text())["missing"]))
        elif yours is None and not your_runs:
            row.update(verdict="not run", why=f"no results: `make run CHAPTER={slug} SCENARIO={ref['scenario']}`")
        elif yours is None or yours["size"] != ref["size"]:
            sizes = sorted({run["size"] for run in your_runs}) or [yours["size"]]
            row.update(verdict="not run at this size",
                       why=f"the reference is size {ref['size']}, yours {', '.join(sizes)}: "
                           f"`make run CHAPTER={slug} SCENARIO={ref['scenario']} SIZE={ref['size']}`")
        elif reproduced(ref, yours):
            row["verdict"] = "reproduced"
        else:
            row["verdict"] = "differs" if ref["match"] == "exact" else "outside the reference's range"
            row["why"] = reasons(metas(reference_set / ref["scenario"]), your_runs)
        rows.append(row)
    return rows


def report(slugs, results: Path) -> list[dict]:
    """Compare every chapter, print the table and write ``comparison.md`` and ``comparison.csv``."""
    results = Path(results)
    rows = [row for slug in slugs for row in compare_chapter(slug, results)]
    if not rows:
        return rows
    results.mkdir(parents=True, exist_ok=True)
    with open(results / "comparison.csv", "w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(str(row[column]).replace("|", "/") for column in COLUMNS) + " |" for row in rows]
    (results / "comparison.md").write_text("# Your machine against the reference\n\n" + "\n".join(lines) + "\n")
    counts = {verdict: sum(row["verdict"] == verdict for row in rows) for verdict in dict.fromkeys(r["verdict"] for r in rows)}
    print("\n".join(["", "Your machine against the reference (README's claim ledger):", *lines]), flush=True)
    print(f"{len(rows)} rows: " + ", ".join(f"{count} {verdict}" for verdict, count in counts.items()) +
          f"\nwritten: {results / 'comparison.md'}, {results / 'comparison.csv'}", flush=True)
    return rows
