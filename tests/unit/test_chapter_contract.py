"""Every chapter keeps the contract (README.md, "Adding a chapter"), and the check catches a chapter
that breaks it: a stub chapter written to a temp folder, whole and then broken on purpose."""
import csv
import json
import textwrap

import pytest

from load import ROOT, chapters, contract
from load.results import CLAIM_COLUMNS


@pytest.mark.parametrize("slug", chapters.CHAPTERS)
def test_every_chapter_keeps_the_contract(slug):
    assert contract.chapter_problems(slug) == []


def test_every_chapter_folder_is_known_to_the_harness():
    folders = sorted(path.name for path in (ROOT / "chapters").iterdir() if path.is_dir())
    assert folders == list(chapters.CHAPTERS), "chapter folders must be named NN-words-with-dashes"


SCENARIOS = '''
from load.harness import Scenario

SIZES = {size: dict(latency=dict(seconds=seconds)) for size, seconds in
         (("smoke", 1), ("default", 5), ("workshop", 30))}


def latency_plan(size):
    """Closed loop, one user: the stub's latency."""
    return {"one": dict(seconds=SIZES[size]["latency"]["seconds"])}


def perform(run):
    pass


SCENARIOS = {"latency": Scenario(latency_plan, perform)}
'''


def write_stub(root, *, scenarios=SCENARIOS, lesson="## Reading order\n1. `demos/stub_chapter/app.py`\n\n"
               "## Scenarios\n`latency`: one user.\n", ledger_value="12.5 (12.0-13.1)", claims_value="12.5",
               claims_size="default", command="make run CHAPTER=09-stub-chapter"):
    """A whole chapter 9 under ``root``; the keyword arguments break one part of it."""
    files = {
        "README.md": f"| # | claim | quoted | measured | figure | command |\n|---|---|---|---|---|---|\n"
                     f"| 9.1 | a claim | 10 | {ledger_value} ms | fig | `{command}` |\n",
        "chapters/09-stub-chapter/README.md": "# Chapter 9\n\n" + lesson,
        "demos/stub_chapter/__init__.py": "", "load/stub_chapter/__init__.py": "",
        "load/stub_chapter/locustfile.py": "", "load/stub_chapter/analysis.py": "",
        "load/stub_chapter/scenarios.py": textwrap.dedent(scenarios),
        "notebooks/09-stub-chapter.ipynb": "{}", "tests/unit/test_stub_chapter_latency.py": "",
        "chapters/09-stub-chapter/reference/figures/latency.png": "png",
    }
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    with open(root / "chapters/09-stub-chapter/reference/figures/claims.csv", "w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=CLAIM_COLUMNS)
        writer.writeheader()
        writer.writerow(dict(zip(CLAIM_COLUMNS, ["9.1", "a claim", "latency", claims_size, "10", claims_value,
                                                 "12.0", "13.1", "3", "ms", "range", ""])))
    return root


def problems(tmp_path, **broken):
    return contract.chapter_problems("09-stub-chapter", write_stub(tmp_path, **broken))


def test_a_whole_stub_chapter_keeps_the_contract(tmp_path):
    assert problems(tmp_path) == []


@pytest.mark.parametrize("broken, expected", [
    (dict(lesson="## Scenarios\n`latency`\n"), "must open with '## Reading order'"),
    (dict(lesson="## Reading order\n1. app.py\n"), "scenario 'latency' is not documented"),
    (dict(scenarios=SCENARIOS.replace('("workshop", 30)', "")), "needs SIZES with exactly smoke, default, workshop"),
    (dict(scenarios=SCENARIOS.replace('"""Closed loop, one user: the stub\'s latency."""', "")), "needs a docstring"),
    (dict(scenarios=SCENARIOS.replace('SCENARIOS = {"latency"', 'SCENARIOS = {"latency": 1, "other"')),
     "is not a load.harness.Scenario"),
    (dict(scenarios=SCENARIOS.replace("dict(latency=dict(", "dict(other=dict(")), "must have one entry per scenario"),
    (dict(scenarios=SCENARIOS.replace('{"one":', '{"One Run":')), "run names must be lower-case"),
    (dict(scenarios="import nothing_here\n"), "does not import"),
    (dict(ledger_value="13.0 (12.0-13.1)"), "ledger row 9.1 must quote the reference's 12.5"),
    (dict(ledger_value="12.5"), "ledger row 9.1 must give the range 12.0-13.1 over 3 runs"),
    (dict(claims_size="workshop"), "its command must say SIZE=workshop"),
])
def test_a_chapter_that_breaks_the_contract_is_told_what_to_fix(tmp_path, broken, expected):
    found = problems(tmp_path, **broken)
    assert any(expected in problem for problem in found), found


def test_missing_files_and_tests_named_after_the_chapter_are_reported(tmp_path):
    write_stub(tmp_path)
    (tmp_path / "load/stub_chapter/analysis.py").unlink()
    (tmp_path / "tests/unit/test_stub_chapter_latency.py").rename(tmp_path / "tests/unit/test_latency.py")
    found = contract.chapter_problems("09-stub-chapter", tmp_path)
    assert "load/stub_chapter/analysis.py is missing" in found
    assert any("no test named after the chapter" in problem for problem in found)


def test_the_ledger_reads_ids_cells_and_numbers():
    rows = contract.ledger()
    assert {"1.1", "4.1", "6.2"} <= set(rows)
    assert contract.numbers("10,000 at 15.0 KB; 6.1x") == {"10000", "15.0", "6.1"}


def test_the_gate_finds_an_invalid_run_and_undeclared_or_missing_failures(tmp_path):
    def meta(valid=True, expected=None, failures=0):
        (tmp_path / "summary.json").write_text(json.dumps({"failures": failures}))
        return {"valid": valid, "invalid_reasons": ["a load generator process had a full core"],
                "expected": expected or {}}
    assert contract.run_problems("r", meta(), tmp_path) == []
    assert "full core" in contract.run_problems("r", meta(valid=False), tmp_path)[0]
    assert "declares none" in contract.run_problems("r", meta(failures=3), tmp_path)[0]
    assert contract.run_problems("r", meta(expected={"failures": "outage"}, failures=3), tmp_path) == []
    assert "did not bite" in contract.run_problems("r", meta(expected={"failures": "outage"}), tmp_path)[0]
