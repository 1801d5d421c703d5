"""The mutation score of each chapter from mutmut's results (``mutants/**/*.py.meta``), after
``mutmut run``: killed / (killed + survived + no tests + timeout), and the names of the survivors.

    python -m tests.deliberate_bugs.scores          # what `make mutants` prints at the end
"""
import json
import sys
from collections import Counter
from pathlib import Path

from mutmut.stats import status_by_exit_code

ROOT = Path(__file__).resolve().parents[2]
COUNTED = ("killed", "survived", "no tests", "timeout")


def results(mutants: Path) -> dict[str, dict[str, str]]:
    """{source file: {mutant name: status}} for every mutated file."""
    found = {}
    for meta in sorted(mutants.rglob("*.py.meta")):
        source = str(meta.relative_to(mutants))[:-len(".meta")]
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        found[source] = {name: status_by_exit_code[code] for name, code in codes.items()}
    return found


def main() -> int:
    mutants = ROOT / "mutants"
    if not mutants.is_dir():
        print("no mutants/ folder: run `make mutants` (or `mutmut run`) first", file=sys.stderr)
        return 1
    by_chapter: dict[str, Counter] = {}
    survivors = []
    for source, statuses in results(mutants).items():
        parts = Path(source).parts                          # demos/<chapter>/<file>.py, or demos/<file>.py
        chapter = parts[1] if len(parts) > 2 else "shared (demos/*.py)"
        counts = by_chapter.setdefault(chapter, Counter())
        counts.update(statuses.values())
        survivors += [name for name, status in statuses.items() if status != "killed"]
        print(f"  {source}: " + ", ".join(f"{n} {status}" for status, n in sorted(Counter(statuses.values()).items())))
    for chapter, counts in sorted(by_chapter.items()):
        counted = sum(counts[status] for status in COUNTED)
        score = counts["killed"] / counted if counted else 0.0
        print(f"mutation score, {chapter}: {score:.1%} ({counts['killed']} of {counted} mutants killed; "
              + ", ".join(f"{counts[status]} {status}" for status in COUNTED[1:]) + ")")
    if survivors:
        print(f"not killed ({len(survivors)}): `mutmut show <name>` shows one; "
              "chapters/<chapter>/README.md explains those on boundary or logic lines")
    return 0


if __name__ == "__main__":
    sys.exit(main())
