"""The chapters the harness knows: every ``chapters/NN-slug/`` folder, and its scenarios module.

Slugs match ``chapters/<slug>/``, ``notebooks/<slug>.ipynb`` and ``results/<slug>/``; the code's
name is the slug's words in snake_case (``04-message-queues`` -> ``demos/message_queues/``,
``load/message_queues/``). A new chapter folder is known as soon as it exists; load/contract.py
says what else it must provide.
"""
import importlib
import importlib.util
import re
from pathlib import Path

from load import ROOT

SLUG = re.compile(r"\d\d-[a-z0-9]+(?:-[a-z0-9]+)*")


def discover(root: Path = ROOT) -> tuple[str, ...]:
    """Every ``chapters/NN-words/`` folder under ``root``, in chapter order."""
    return tuple(sorted(path.name for path in (root / "chapters").iterdir()
                        if path.is_dir() and SLUG.fullmatch(path.name)))


CHAPTERS = discover()


def module_name(slug: str) -> str:
    return slug.split("-", 1)[1].replace("-", "_")


def scenarios(slug: str, root: Path = ROOT):
    """The chapter's ``load/<snake>/scenarios.py`` module (from another ``root``: loaded by path)."""
    if root == ROOT:
        if slug not in CHAPTERS:
            raise SystemExit(f"unknown chapter {slug!r}; known: {', '.join(CHAPTERS)}")
        return importlib.import_module(f"load.{module_name(slug)}.scenarios")
    path = root / "load" / module_name(slug) / "scenarios.py"
    spec = importlib.util.spec_from_file_location(f"_chapter_{module_name(slug)}_scenarios", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
