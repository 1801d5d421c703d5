"""The deliberate-bug lists are well formed: each names a file, a text found exactly once in it,
and a test that exists (the runner itself is `make mutants`, not CI: it runs each bug's test)."""
import pytest

from load import ROOT
from tests.deliberate_bugs import run


def test_every_module_but_the_runner_and_the_scores_is_a_chapter_list():
    assert run.chapters() and "scores" not in run.chapters() and "run" not in run.chapters()
    for chapter in run.chapters():
        assert (ROOT / "demos" / chapter).is_dir(), chapter


@pytest.mark.parametrize("chapter", run.chapters())
def test_each_bug_applies_once_and_names_an_existing_test(chapter):
    for bug in run.load_bugs(chapter):
        text = (ROOT / bug["path"]).read_text()
        assert text.count(bug["find"]) == 1, (bug["name"], bug["path"])
        test_file, _, test_name = bug["fails"].partition("::")
        assert (ROOT / test_file).is_file(), bug["fails"]
        name = test_name.split("[")[0].split("::")[-1]
        assert f"def {name}(" in (ROOT / test_file).read_text(), bug["fails"]
