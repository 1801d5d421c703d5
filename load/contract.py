"""The chapter contract, checked: what every chapter provides, and what a run of it must leave.

``chapter_problems(slug)`` lists what a chapter lacks (README.md's "Adding a chapter" is the same
list in prose); ``results_problems(slug, results, size)`` lists what is wrong with a results
folder after its scenarios ran and its notebook rendered (the smoke gate). Both return plain
sentences that say what to do; an empty list means the chapter keeps the contract.
"""
import json
import re
from pathlib import Path

from load import ROOT, chapters
from load.harness import SIZES, Scenario
from load.results import CLAIM_COLUMNS, read_claims

RUN_NAME = re.compile(r"[a-z0-9][a-z0-9.-]*")
LEDGER_ROW = re.compile(r"\|\s*(\d+\.\d+)\s*\|(.*)\|\s*$")
NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")


# --- the claim ledger in README.md ------------------------------------------------------------

def ledger(root: Path = ROOT) -> dict:
    """README.md's claim ledger: ``{"4.1": {"claim", "quoted", "measured", "figure", "command"}}``."""
    rows = {}
    for line in (root / "README.md").read_text().splitlines():
        if match := LEDGER_ROW.fullmatch(line.strip()):
            cells = [cell.strip() for cell in match.group(2).split("|")]
            if len(cells) == 5:
                rows[match.group(1)] = dict(zip(("claim", "quoted", "measured", "figure", "command"), cells))
    return rows


def numbers(text: str) -> set[str]:
    """The numbers written in ``text``, thousands separators removed: "10,000 at 15.0" -> {"10000", "15.0"}."""
    return {number.replace(",", "") for number in NUMBER.findall(text)}


def measured(row: dict) -> bool:
    return not row["measured"].lower().startswith("not yet measured")


# --- a chapter's files and modules ------------------------------------------------------------

def chapter_problems(slug: str, root: Path = ROOT) -> list[str]:
    """Everything chapter ``slug`` under ``root`` lacks, in the order a contributor writes it."""
    if not chapters.SLUG.fullmatch(slug):
        return [f"{slug!r} is not a chapter slug: two digits, a dash, lower-case words joined by dashes"]
    snake = chapters.module_name(slug)
    problems = []
    for path in (f"chapters/{slug}/README.md", f"demos/{snake}/__init__.py", f"load/{snake}/__init__.py",
                 f"load/{snake}/locustfile.py", f"load/{snake}/scenarios.py", f"load/{snake}/analysis.py",
                 f"notebooks/{slug}.ipynb"):
        if not (root / path).is_file():
            problems.append(f"{path} is missing")
    if not list((root / "tests").glob(f"**/test_{snake}_*.py")):
        problems.append(f"no test named after the chapter: tests/<unit|integration|e2e>/test_{snake}_*.py")
    readme = root / "chapters" / slug / "README.md"
    lesson = readme.read_text() if readme.is_file() else ""
    headings = re.findall(r"^## (.+)$", lesson, flags=re.MULTILINE)
    if lesson and (not headings or headings[0].strip().lower() != "reading order"):
        problems.append(f"chapters/{slug}/README.md must open with '## Reading order' (which file first, which next)")
    if (root / "load" / snake / "scenarios.py").is_file():
        problems += scenario_problems(slug, root, lesson)
    problems += reference_problems(slug, root)
    return problems


def scenario_problems(slug: str, root: Path, lesson: str) -> list[str]:
    snake = chapters.module_name(slug)
    try:
        module = chapters.scenarios(slug, root)
    except Exception as error:   # the module itself is broken: say so, do not crash the check
        return [f"load/{snake}/scenarios.py does not import: {error!r}"]
    scenarios = getattr(module, "SCENARIOS", None)
    sizes = getattr(module, "SIZES", None)
    if not isinstance(scenarios, dict) or not scenarios:
        return [f"load/{snake}/scenarios.py needs SCENARIOS = {{name: Scenario(plan, perform, headline)}}"]
    problems = []
    if not isinstance(sizes, dict) or set(sizes) != set(SIZES):
        problems.append(f"load/{snake}/scenarios.py needs SIZES with exactly {', '.join(SIZES)}")
        sizes = {}
    for size, by_scenario in sizes.items():
        if not isinstance(by_scenario, dict) or set(by_scenario) != set(scenarios):
            problems.append(f"SIZES[{size!r}] must have one entry per scenario ({', '.join(scenarios)}), "
                            f"has {', '.join(by_scenario) if isinstance(by_scenario, dict) else by_scenario!r}")
    for name, scenario in scenarios.items():
        if not isinstance(scenario, Scenario):
            problems.append(f"scenario {name!r} is not a load.harness.Scenario")
            continue
        if not scenario.doc:
            problems.append(f"scenario {name!r}: its plan function needs a docstring (what it measures, open or closed loop)")
        if f"`{name}`" not in lesson:
            problems.append(f"scenario {name!r} is not documented in chapters/{slug}/README.md (write it as `{name}`)")
        for size in sizes:
            try:
                runs = scenario.plan(size)
                json.dumps(runs)
            except Exception as error:
                problems.append(f"scenario {name!r} cannot plan size {size!r}: {error!r}")
                continue
            if not runs:
                problems.append(f"scenario {name!r} plans no run at size {size!r}")
            bad = [run for run in runs if not RUN_NAME.fullmatch(run)]
            if bad:
                problems.append(f"scenario {name!r}: run names must be lower-case words, digits, dots and dashes: {bad}")
    return problems


def reference_problems(slug: str, root: Path) -> list[str]:
    """The committed reference set: figures, a claims.csv with ledger ids, and README's ledger quoting it."""
    figures = root / "chapters" / slug / "reference" / "figures"
    number = str(int(slug[:2]))
    rows = {key: row for key, row in ledger(root).items() if key.split(".")[0] == number}
    if not any(measured(row) for row in rows.values()):
        return []   # not measured yet: nothing to hold the ledger to
    if not list(figures.glob("*.png")) or not (figures / "claims.csv").exists():
        return [f"chapters/{slug}/reference/figures/ needs the rendered PNGs and claims.csv: "
                f"`make reference CHAPTER={slug}`"]
    claims = read_claims(figures / "claims.csv")
    if not claims or list(claims[0]) != CLAIM_COLUMNS:
        return [f"chapters/{slug}/reference/figures/claims.csv must have the columns {', '.join(CLAIM_COLUMNS)}"]
    problems = []
    ids = {claim["id"] for claim in claims if claim["id"]}
    for key, row in rows.items():
        if measured(row) and key not in ids:
            problems.append(f"ledger row {key} is measured but no row of the reference claims.csv has id {key}")
    for claim in claims:
        key = claim["id"]
        if not key:
            continue
        if key not in rows:
            problems.append(f"claims.csv row {claim['claim']!r} has id {key}, which README.md's ledger lacks")
            continue
        quoted = numbers(rows[key]["measured"])
        if claim["measured"].replace(",", "") not in quoted:
            problems.append(f"ledger row {key} must quote the reference's {claim['measured']} "
                            f"({claim['claim']}); it says: {rows[key]['measured']}")
        elif claim["low"] != claim["high"] and not {claim["low"], claim["high"]} <= quoted:
            problems.append(f"ledger row {key} must give the range {claim['low']}-{claim['high']} over "
                            f"{claim['runs']} runs beside {claim['measured']} ({claim['claim']})")
        if claim["size"] and claim["size"] != "default" and f"SIZE={claim['size']}" not in rows[key]["command"]:
            problems.append(f"ledger row {key} comes from size {claim['size']}: its command must say SIZE={claim['size']}")
    return problems


# --- what a run leaves behind (the smoke gate) --------------------------------------------------

def results_problems(slug: str, results: Path, size: str, root: Path = ROOT) -> list[str]:
    """After ``python -m load run <slug> --size <size>`` and rendering: every planned run is there
    and valid, its failures are the ones it declared, and the figures and claims.csv exist."""
    problems = []
    for name, scenario in chapters.scenarios(slug, root).SCENARIOS.items():
        folder = results / name
        if (folder / "skipped.json").exists():
            continue
        for run_name in scenario.plan(size):
            meta_paths = sorted(folder.glob(f"{run_name}/rep-*/meta.json"))
            if not meta_paths:
                problems.append(f"{name}/{run_name}: no run recorded")
            for meta_path in meta_paths:
                problems += run_problems(f"{name}/{run_name}/{meta_path.parent.name}", json.loads(meta_path.read_text()),
                                         meta_path.parent)
    figures = results / "figures"
    if not list(figures.glob("*.png")):
        problems.append(f"no figure rendered in {figures}")
    claims = figures / "claims.csv"
    if not claims.exists():
        problems.append(f"no claims.csv in {figures}")
    else:
        rows = read_claims(claims)
        if not rows or list(rows[0]) != CLAIM_COLUMNS or not any(row["id"] for row in rows):
            problems.append(f"{claims} needs the columns {', '.join(CLAIM_COLUMNS)} and rows with ledger ids")
    return problems


def run_problems(label: str, meta: dict, folder: Path) -> list[str]:
    if not meta.get("valid"):
        return [f"{label}: invalid run: {'; '.join(meta.get('invalid_reasons', []))}"]
    summary_path = folder / "summary.json"
    failures = json.loads(summary_path.read_text()).get("failures", 0) if summary_path.exists() else 0
    expected = (meta.get("expected") or {}).get("failures")
    if failures and not expected:
        return [f"{label}: {failures} failed requests, and the run declares none (expect={{'failures': why}})"]
    if expected and not failures:
        return [f"{label}: declares failures ({expected}) but none happened: the fault did not bite"]
    return []
