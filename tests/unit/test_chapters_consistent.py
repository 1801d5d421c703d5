"""A reader walks from a chapter to its code, load, notebook and figures by name: those files exist,
and every figure or file a chapter's README links to is there (docs that cannot drift)."""
import re

import pytest

from load import chapters
from load.harness import ROOT


@pytest.mark.parametrize("slug", chapters.CHAPTERS)
def test_a_chapter_has_its_lesson_code_load_notebook_and_reference_figures(slug):
    snake = chapters.module_name(slug)
    assert (ROOT / "chapters" / slug / "README.md").is_file()
    assert (ROOT / "demos" / snake / "__init__.py").is_file()
    assert (ROOT / "load" / snake / "locustfile.py").is_file()
    assert chapters.scenarios(slug).SCENARIOS
    assert (ROOT / "notebooks" / f"{slug}.ipynb").is_file()
    figures = list((ROOT / "chapters" / slug / "reference" / "figures").glob("*.png"))
    assert figures, f"{slug} has no committed reference figures: run `make reference CHAPTER={slug}`"


@pytest.mark.parametrize("readme", ["README.md", *[f"chapters/{slug}/README.md" for slug in chapters.CHAPTERS]])
def test_every_relative_link_in_a_readme_resolves(readme):
    path = ROOT / readme
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", path.read_text())
    missing = [link for link in links if "://" not in link and not (path.parent / link).exists()]
    assert not missing, f"{readme} links to missing files: {missing}"
