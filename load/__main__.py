"""Command line of the harness.

    python -m load list                                  chapters, their scenarios and runs per size
    python -m load run [CHAPTER ...] [--scenario S] [--size SIZE] [--repeat N]
    python -m load figures [CHAPTER ...] [--results DIR]  render the notebooks' figures, then compare
    python -m load compare [CHAPTER ...] [--results DIR]  your claims.csv against the reference's
    python -m load all [--size SIZE]                      every chapter's runs, the figures, the comparison
    python -m load reference CHAPTER                      copy results into the chapter's reference set

SIZE is smoke (the tests), default (the main job) or workshop (longer runs, three repetitions);
the SIZE environment variable sets it too. A scenario that needs a server or root this machine
lacks is skipped with the install hint; with REQUIRE_SERVERS=1 that is an error.
"""
import argparse
import json
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from load import ROOT, chapters, compare, figures, servers
from load.harness import SIZES, Harness, Scenario

DEFAULT_REPEATS = {"smoke": 1, "default": 1, "workshop": 3}


@dataclass
class Planned:
    slug: str
    scenario_name: str
    scenario: Scenario
    run_name: str
    params: dict
    repetition: int


def clock(seconds: float) -> str:
    minutes, seconds = divmod(int(round(seconds)), 60)
    return f"{minutes}:{seconds:02d}"


def plan_runs(slugs, scenario_filter: str, size: str, repeat: int, results_root: Path) -> tuple[list, list]:
    """Every run to make, in order, and the scenarios skipped for what this machine lacks (each
    recorded in ``<results>/<chapter>/<scenario>/skipped.json``, so figures and the comparison
    say "not run" and why)."""
    planned, skipped = [], []
    for slug in slugs:
        module = chapters.scenarios(slug)
        names = [scenario_filter] if scenario_filter else list(module.SCENARIOS)
        for name in names:
            if name not in module.SCENARIOS:
                raise SystemExit(f"{slug} has no scenario {name!r}; it has: {', '.join(module.SCENARIOS)}")
            scenario = module.SCENARIOS[name]
            folder = results_root / slug / name
            (folder / "skipped.json").unlink(missing_ok=True)
            if missing := scenario.missing():
                folder.mkdir(parents=True, exist_ok=True)
                (folder / "skipped.json").write_text(json.dumps({"size": size, "missing": missing}, indent=2))
                skipped.append(f"{slug} / {name}: {'; '.join(missing)}")
                continue
            for repetition in range(1, repeat + 1):
                for run_name, params in scenario.plan(size).items():
                    planned.append(Planned(slug, name, scenario, run_name, params, repetition))
    return planned, skipped


def run_planned(planned: list[Planned], size: str, results_root: Path) -> dict:
    """Make every planned run, saying where it is (run k of N, time so far, time left) and, after
    each, the one line that says what it measured. Returns each chapter's wall seconds and runs."""
    started = time.monotonic()
    timings: dict = {}
    for number, item in enumerate(planned, 1):
        elapsed = time.monotonic() - started
        left = f", about {clock(elapsed / (number - 1) * (len(planned) - number + 1))} left" if number > 1 else ""
        print(f"== [{number}/{len(planned)}] {item.slug} / {item.scenario_name} / {item.run_name} / "
              f"rep {item.repetition}, size {size}: {clock(elapsed)} so far{left}", flush=True)
        run_started = time.monotonic()
        harness = Harness(item.slug, size, item.repetition, results_root, item.scenario_name)
        with harness.run(item.run_name, **item.params) as run:
            item.scenario.perform(run)
        if item.scenario.headline:
            print(f"  => {item.run_name}: {item.scenario.headline(run)}", flush=True)
        chapter = timings.setdefault(item.slug, {"size": size, "runs": 0, "wall_s": 0.0})
        chapter["runs"] += 1
        chapter["wall_s"] = round(chapter["wall_s"] + time.monotonic() - run_started, 1)
    return timings


def report_timings(timings: dict, results_root: Path) -> None:
    """Print each chapter's wall time and the total; keep them in ``<results>/<chapter>/timings.json``."""
    for slug, chapter in timings.items():
        (results_root / slug).mkdir(parents=True, exist_ok=True)
        (results_root / slug / "timings.json").write_text(json.dumps(chapter, indent=2) + "\n")
        print(f"== {slug}: {chapter['runs']} runs in {clock(chapter['wall_s'])} (size {chapter['size']})", flush=True)
    if len(timings) > 1:
        total = sum(chapter["wall_s"] for chapter in timings.values())
        print(f"== all chapters: {clock(total)}", flush=True)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m load", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    command = commands.add_parser("list")
    command.add_argument("--size", choices=SIZES, default=os.environ.get("SIZE", "default"))
    for name in ("run", "all"):
        command = commands.add_parser(name)
        if name == "run":
            command.add_argument("chapters", nargs="*", default=list(chapters.CHAPTERS))
            command.add_argument("--scenario", default="")
        command.add_argument("--size", choices=SIZES, default=os.environ.get("SIZE", "default"))
        command.add_argument("--repeat", type=int, default=0, help="repetitions (default: by size)")
        command.add_argument("--results", default=str(ROOT / "results"))
    for name in ("figures", "compare"):
        command = commands.add_parser(name)
        command.add_argument("chapters", nargs="*", default=list(chapters.CHAPTERS))
        command.add_argument("--results", default=str(ROOT / "results"),
                             help="folder holding <chapter>/ results (default: results/)")
    command = commands.add_parser("reference")
    command.add_argument("chapter")
    command.add_argument("--results", default=str(ROOT / "results"))
    args = parser.parse_args(argv)
    results_root = Path(getattr(args, "results", ROOT / "results"))

    if args.command == "list":
        for slug in chapters.CHAPTERS:
            print(slug)
            for name, scenario in chapters.scenarios(slug).SCENARIOS.items():
                runs = len(scenario.plan(args.size))
                summary = " ".join(scenario.doc.split("\n\n")[0].split()).split(". ")[0]
                print(f"  {name:12s} {runs:3d} runs at {args.size}: {summary}")
    elif args.command in ("run", "all"):
        repeat = args.repeat or DEFAULT_REPEATS[args.size]
        slugs = args.chapters if args.command == "run" else list(chapters.CHAPTERS)
        planned, skipped = plan_runs(slugs, getattr(args, "scenario", ""), args.size, repeat, results_root)
        for line in skipped:
            print(f"== skipped {line}", flush=True)
        report_timings(run_planned(planned, args.size, results_root), results_root)
        print(f"results: {', '.join(str(results_root / slug) for slug in slugs)}", flush=True)
        if args.command == "all":
            for slug in slugs:
                figures.render(slug, results_root / slug)
            compare.report(slugs, results_root)
        if skipped and servers.required():
            raise SystemExit(f"REQUIRE_SERVERS=1 and {len(skipped)} scenario(s) skipped: {'; '.join(skipped)}")
    elif args.command == "figures":
        for slug in args.chapters:
            figures.render(slug, results_root / slug)
        compare.report(args.chapters, results_root)
    elif args.command == "compare":
        compare.report(args.chapters, results_root)
    elif args.command == "reference":
        figures.make_reference(args.chapter, results_root / args.chapter)


def _interrupt(signum, frame):
    raise KeyboardInterrupt   # SIGTERM stops services the same way Ctrl-C does


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _interrupt)
    # Started as a background job (`make bench &`, CI runners), SIGINT arrives ignored and Python
    # installs no handler of its own: install it, so Ctrl-C stops every service however we started.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        main()
    except KeyboardInterrupt:
        sys.exit("interrupted: services stopped")
