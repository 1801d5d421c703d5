"""Every figure or file a README links to is there (docs that cannot drift; the chapter files
themselves are checked by test_chapter_contract.py)."""
import re

import pytest

from load import ROOT, chapters


@pytest.mark.parametrize("readme", ["README.md", *[f"chapters/{slug}/README.md" for slug in chapters.CHAPTERS]])
def test_every_relative_link_in_a_readme_resolves(readme):
    path = ROOT / readme
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", path.read_text())
    missing = [link for link in links if "://" not in link and not (path.parent / link).exists()]
    assert not missing, f"{readme} links to missing files: {missing}"
