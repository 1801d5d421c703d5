"""`python -m load run`: every run planned before the first starts, progress and a headline per run,
wall times per chapter, and a scenario that needs what the machine lacks skipped with its hint
(an error under REQUIRE_SERVERS=1)."""
import json
import types

import pytest

import load.__main__ as command
from load.harness import Scenario


def stub_chapter(monkeypatch, **scenarios):
    module = types.SimpleNamespace(SCENARIOS=scenarios)
    monkeypatch.setattr(command.chapters, "scenarios", lambda slug: module)


def two_runs(size):
    """Two runs at every size."""
    return {"a": {"x": 1}, "b": {"x": 2}}


def nothing(run):
    run.notes["performed"] = run.params["x"]


def test_runs_are_planned_then_made_with_progress_headlines_and_timings(tmp_path, monkeypatch, capsys):
    stub_chapter(monkeypatch, first=Scenario(two_runs, nothing, lambda run: f"x was {run.notes['performed']}"))
    command.main(["run", "09-stub", "--size", "smoke", "--results", str(tmp_path), "--repeat", "2"])
    out = capsys.readouterr().out
    assert "== [1/4] 09-stub / first / a / rep 1, size smoke: 0:00 so far\n" in out
    assert "== [4/4] 09-stub / first / b / rep 2, size smoke: " in out and "left" in out
    assert "  => b: x was 2" in out
    assert json.loads((tmp_path / "09-stub" / "timings.json").read_text())["runs"] == 4
    assert "== 09-stub: 4 runs in 0:0" in out
    meta = json.loads((tmp_path / "09-stub/first/b/rep-2/meta.json").read_text())
    assert meta["params"] == {"x": 2} and meta["notes"] == {"performed": 2}


def test_a_scenario_needing_what_is_missing_is_skipped_with_the_hint(tmp_path, monkeypatch, capsys):
    stub_chapter(monkeypatch, needy=Scenario(two_runs, nothing, needs=("no-such-program-here",)),
                 fine=Scenario(two_runs, nothing))
    monkeypatch.delenv("REQUIRE_SERVERS", raising=False)
    command.main(["run", "09-stub", "--size", "smoke", "--results", str(tmp_path)])
    out = capsys.readouterr().out
    assert "== skipped 09-stub / needy: no-such-program-here not found: install it" in out
    assert json.loads((tmp_path / "09-stub/needy/skipped.json").read_text())["missing"][0].startswith("no-such")
    assert (tmp_path / "09-stub/fine/a/rep-1/meta.json").exists() and not (tmp_path / "09-stub/needy/a").exists()
    monkeypatch.setenv("REQUIRE_SERVERS", "1")
    with pytest.raises(SystemExit, match="REQUIRE_SERVERS=1 and 1 scenario"):
        command.main(["run", "09-stub", "--size", "smoke", "--results", str(tmp_path)])


def test_an_unknown_scenario_says_which_exist(monkeypatch, tmp_path):
    stub_chapter(monkeypatch, first=Scenario(two_runs, nothing))
    with pytest.raises(SystemExit, match="has no scenario 'second'; it has: first"):
        command.main(["run", "09-stub", "--scenario", "second", "--results", str(tmp_path)])


def test_expectations_are_checked_by_name(tmp_path):
    from load.harness import Harness
    with pytest.raises(ValueError, match="expect takes failures, overload, not surprise"):
        with Harness("09-stub", "smoke", 1, tmp_path, "s").run("a", expect={"surprise": "!"}):
            pass
