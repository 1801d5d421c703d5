"""The chapters the harness knows: slug -> the module holding its SCENARIOS and SIZES.

Slugs match ``chapters/<slug>/``, ``notebooks/<slug>.ipynb`` and ``results/<slug>/``; the module
name is the slug's words in snake_case (``04-message-queues`` -> ``load.message_queues``).
"""
import importlib

CHAPTERS = ("01-realtime-delivery", "04-message-queues")


def module_name(slug: str) -> str:
    return slug.split("-", 1)[1].replace("-", "_")


def scenarios(slug: str):
    if slug not in CHAPTERS:
        raise SystemExit(f"unknown chapter {slug!r}; known: {', '.join(CHAPTERS)}")
    return importlib.import_module(f"load.{module_name(slug)}.scenarios")
