"""Every chapter's notebook fails loudly, saying what to run, without results; and with several
repetitions of every run, claims.csv summarises them (median, range, runs) and the figures still
render. The second repetition is a copy of the fixture's first: this proves the pipeline, not the
spread."""
import json
import shutil

import pytest
from nbclient.exceptions import CellExecutionError

from load import chapters, figures
from load.harness import ROOT
from load.results import read_claims

FIXTURES = ROOT / "tests" / "fixtures" / "results"


def repeated(fixture, target):
    """The fixture with every run's rep-1 copied to rep-2 (meta.json saying so)."""
    shutil.copytree(fixture, target)
    for meta_path in target.glob("*/*/rep-1/meta.json"):
        second = meta_path.parent.with_name("rep-2")
        shutil.copytree(meta_path.parent, second)
        meta = json.loads(meta_path.read_text())
        (second / "meta.json").write_text(json.dumps({**meta, "repetition": 2}))
    return target


@pytest.mark.parametrize("slug", ["01-realtime-delivery", "04-message-queues"])
def test_notebook_summarises_every_claim_over_the_repetitions(slug, tmp_path):
    results = repeated(FIXTURES / slug, tmp_path / "results")
    figures.render(slug, results, tmp_path / "figures")
    claims = read_claims(tmp_path / "figures" / "claims.csv")
    assert claims and all(row["runs"] == "2" and row["low"] == row["measured"] == row["high"] for row in claims)
    assert len(list((tmp_path / "figures").glob("*.png"))) >= 4


@pytest.mark.parametrize("slug", chapters.CHAPTERS)
def test_notebook_fails_loudly_when_results_are_missing(slug, tmp_path):
    with pytest.raises(CellExecutionError, match=f"no '.+' results under .*make run CHAPTER={slug}"):
        figures.render(slug, tmp_path / "empty", tmp_path / "figures")
    assert not list((tmp_path / "figures").glob("*.png"))
