"""Command line of the harness.

    python -m load list                                  chapters and their scenarios
    python -m load run [CHAPTER ...] [--scenario S] [--size SIZE] [--repeat N]
    python -m load figures [CHAPTER ...] [--results DIR]  render the notebooks' figures
    python -m load all [--size SIZE]                      every chapter's runs, then the figures
    python -m load reference CHAPTER                      copy results into the chapter's reference set

SIZE is smoke, default (the main job) or workshop (longer runs, three repetitions); the SIZE
environment variable sets it too.
"""
import argparse
import os
import signal
import sys
import time

from load import chapters, figures
from load.harness import ROOT, SIZES, Harness

DEFAULT_REPEATS = {"smoke": 1, "default": 1, "workshop": 3}


def run_chapters(slugs, scenario_filter, size, repeat, results_root) -> None:
    for slug in slugs:
        module = chapters.scenarios(slug)
        names = [scenario_filter] if scenario_filter else list(module.SCENARIOS)
        for name in names:
            if name not in module.SCENARIOS:
                raise SystemExit(f"{slug} has no scenario {name!r}; it has: {', '.join(module.SCENARIOS)}")
            for repetition in range(1, repeat + 1):
                started = time.monotonic()
                print(f"== {slug}: scenario {name}, size {size}, repetition {repetition}/{repeat}", flush=True)
                module.SCENARIOS[name](Harness(slug, size, repetition, results_root, name))
                print(f"== {slug}: {name} done in {time.monotonic() - started:.0f} s", flush=True)
        print(f"results: {results_root / slug}", flush=True)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m load", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list")
    for name in ("run", "all"):
        command = commands.add_parser(name)
        if name == "run":
            command.add_argument("chapters", nargs="*", default=list(chapters.CHAPTERS))
            command.add_argument("--scenario", default="")
        command.add_argument("--size", choices=SIZES, default=os.environ.get("SIZE", "default"))
        command.add_argument("--repeat", type=int, default=0, help="repetitions (default: by size)")
        command.add_argument("--results", default=str(ROOT / "results"))
    command = commands.add_parser("figures")
    command.add_argument("chapters", nargs="*", default=list(chapters.CHAPTERS))
    command.add_argument("--results", default=str(ROOT / "results"),
                         help="folder holding <chapter>/ results (default: results/)")
    command = commands.add_parser("reference")
    command.add_argument("chapter")
    command.add_argument("--results", default=str(ROOT / "results"))
    args = parser.parse_args(argv)

    from pathlib import Path
    if args.command == "list":
        for slug in chapters.CHAPTERS:
            module = chapters.scenarios(slug)
            print(slug)
            for name, function in module.SCENARIOS.items():
                print(f"  {name:12s} {(function.__doc__ or '').strip().splitlines()[0] if function.__doc__ else ''}")
    elif args.command in ("run", "all"):
        repeat = args.repeat or DEFAULT_REPEATS[args.size]
        slugs = args.chapters if args.command == "run" else list(chapters.CHAPTERS)
        run_chapters(slugs, getattr(args, "scenario", ""), args.size, repeat, Path(args.results))
        if args.command == "all":
            for slug in slugs:
                figures.render(slug, Path(args.results) / slug)
    elif args.command == "figures":
        for slug in args.chapters:
            figures.render(slug, Path(args.results) / slug)
    elif args.command == "reference":
        figures.make_reference(args.chapter, Path(args.results) / args.chapter)


def _interrupt(signum, frame):
    raise KeyboardInterrupt   # SIGTERM stops services the same way Ctrl-C does


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        main()
    except KeyboardInterrupt:
        sys.exit("interrupted: services stopped")
