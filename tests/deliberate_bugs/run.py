"""Put each deliberate bug into a copy of the repository and check that its named test fails.

    python -m tests.deliberate_bugs.run                  # every chapter's bugs
    python -m tests.deliberate_bugs.run message_queues   # one chapter's

For each bug: copy the files git tracks (plus uncommitted edits to them) to a temp folder, apply the
one replacement, run the named test there with this venv's python, and report it caught (the test
failed) or MISSED (it passed). Exits non-zero if any bug is missed, its ``find`` does not occur
exactly once, or its test cannot be run at all (collected nothing, errored before running).
"""
import argparse
import importlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
KEYS = {"name", "path", "find", "replace", "fails"}
TEST_TIMEOUT_S = 300


NOT_CHAPTERS = ("__init__", "run", "scores")   # the runner and the mutation scores, not bug lists


def chapters() -> list[str]:
    return sorted(p.stem for p in HERE.glob("*.py") if p.stem not in NOT_CHAPTERS)


def load_bugs(chapter: str) -> list[dict]:
    bugs = importlib.import_module(f"tests.deliberate_bugs.{chapter}").BUGS
    for bug in bugs:
        if set(bug) != KEYS:
            raise SystemExit(f"{chapter}: bug {bug.get('name')!r} needs exactly the keys {sorted(KEYS)}")
    return bugs


def copy_tracked(destination: Path) -> None:
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in filter(None, files.decode().split("\0")):
        source = ROOT / name
        if source.is_file():                     # a tracked file deleted in the work tree is skipped
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def apply(copy: Path, bug: dict) -> str:
    """Apply the bug in ``copy``; return a problem, or "" when it applied."""
    path = copy / bug["path"]
    if not path.is_file():
        return f"{bug['path']} does not exist"
    text = path.read_text()
    found = text.count(bug["find"])
    if found != 1:
        return f"`find` occurs {found} times in {bug['path']} (it must occur exactly once)"
    path.write_text(text.replace(bug["find"], bug["replace"]))
    return ""


def run_test(copy: Path, node_id: str) -> tuple[int, str]:
    """pytest's exit code and the tail of its output, for ``node_id`` in ``copy``."""
    env = {**os.environ, "PYTHONPATH": str(copy), "PYTHONDONTWRITEBYTECODE": "1"}
    for variable in ("BROKER_URL", "DATABASE_URL", "REDIS_URL"):
        env.pop(variable, None)
    try:
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                               "-p", "no:randomly", node_id], cwd=copy, env=env, capture_output=True,
                              text=True, timeout=TEST_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return 1, f"timed out after {TEST_TIMEOUT_S} s (counts as failing)"
    return done.returncode, "\n".join((done.stdout + done.stderr).strip().splitlines()[-3:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.deliberate_bugs.run", description=__doc__.splitlines()[0])
    parser.add_argument("chapters", nargs="*", metavar="CHAPTER_SNAKE", help=f"any of {', '.join(chapters())}")
    args = parser.parse_args(argv)
    names = args.chapters or chapters()
    if unknown := set(names) - set(chapters()):
        parser.error(f"no deliberate bugs for {', '.join(sorted(unknown))}: choose from {', '.join(chapters())}")
    bad, started = [], time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="deliberate-bugs-"))
    try:
        pristine = work / "pristine"
        copy_tracked(pristine)
        for chapter in names:
            bugs = load_bugs(chapter)
            for number, bug in enumerate(bugs, 1):
                copy = work / f"{chapter}-{number}"
                shutil.copytree(pristine, copy, symlinks=True)
                label = f"[{chapter} {number}/{len(bugs)}] {bug['name']}"
                problem = apply(copy, bug)
                if problem:
                    print(f"{label}: BROKEN BUG: {problem}", flush=True)
                    bad.append(label)
                    continue
                took = time.monotonic()
                code, tail = run_test(copy, bug["fails"])
                took = time.monotonic() - took
                if code == 1:
                    print(f"{label}: caught by {bug['fails']} ({took:.0f} s)", flush=True)
                elif code == 0:
                    print(f"{label}: MISSED: {bug['fails']} passed with the bug in place ({took:.0f} s)", flush=True)
                    bad.append(label)
                else:                                 # 2-5: interrupted, internal error, usage, nothing collected
                    print(f"{label}: TEST NOT RUN (pytest exit code {code}): {bug['fails']}\n{tail}", flush=True)
                    bad.append(label)
                shutil.rmtree(copy, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    total = sum(len(load_bugs(chapter)) for chapter in names)
    print(f"deliberate bugs: {total - len(bad)} of {total} caught in {time.monotonic() - started:.0f} s"
          + (f"; not caught: {', '.join(bad)}" if bad else ""), flush=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
