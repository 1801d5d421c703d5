"""The one percentile (nearest rank), the spread over repetitions and claims.csv, on known inputs."""
import math

import pytest

from load.results import (CLAIM_COLUMNS, Claims, cdf, machine_line, marked, median_bars, noisy_note, paired_ratios,
                          per_repetition, percentile, quoted, range_bars, read_claims, reference_line,
                          repetitions, save, spread)


@pytest.mark.parametrize("values, fraction, expected", [
    ([1, 2, 3, 4], 0.5, 2),                 # even n: the lower middle, not an average
    ([1, 2, 3, 4, 5], 0.5, 3),              # odd n: the middle
    (list(range(1, 101)), 0.99, 99),        # p99 of 100 samples is not the maximum
    (list(range(1, 101)), 0.95, 95),
    (list(range(1, 101)), 0.07, 7),         # 0.07 * 100 = 7.000000000000001 in floating point
    (list(range(1, 11)), 0.99, 10),
    (list(range(1, 11)), 0.25, 3),          # ceil(2.5) = 3: round() would say 2 (banker's rounding)
    (list(range(1, 11)), 0.15, 2),          # ceil(1.5) = 2: round() would also say 2, by luck
    ([7], 0.0, 7), ([7], 1.0, 7),
    ([3, 1, 2], 1.0, 3),                    # unsorted input is sorted first
])
def test_percentile_is_nearest_rank(values, fraction, expected):
    assert percentile(values, fraction) == expected


def test_percentile_of_nothing_is_none():
    assert percentile([], 0.5) is None


def test_spread_gives_median_and_range_and_flags_a_factor_of_two():
    assert spread([3.0, 1.0, 2.0]) == spread([1, 2, 3])
    result = spread([10, 30, 12])
    assert (result.median, result.low, result.high, result.runs) == (12, 10, 30, 3)
    assert result.noisy and not spread([10, 19.9]).noisy
    assert spread([5, float("nan")]).runs == 1
    assert spread([0, 0]).factor == 1.0 and math.isinf(spread([0, 1]).factor)
    with pytest.raises(ValueError):
        spread([])


def test_claims_csv_has_ids_medians_and_ranges(tmp_path):
    claims = Claims()
    claims.add("latency (ms)", [153.71, 150.2, 160.0], id="4.1", scenario="latency", size="default",
               article=150, unit="ms")
    claims.add("lost messages", [0, 0, 0], id="1.3", article=0, digits=0, match="exact")
    with pytest.raises(ValueError):
        claims.add("bad", [1], match="roughly")
    rows = read_claims(claims.write(tmp_path / "claims.csv"))
    assert list(rows[0]) == CLAIM_COLUMNS
    assert {key: rows[0][key] for key in ("id", "measured", "low", "high", "runs", "match")} == \
        {"id": "4.1", "measured": "153.7", "low": "150.2", "high": "160.0", "runs": "3", "match": "range"}
    assert (rows[1]["measured"], rows[1]["match"], rows[1]["article"]) == ("0", "exact", "0")


def rep(name, k, value, **params):
    return {"run": name, "repetition": k, "params": params, "value": value}


def test_per_repetition_groups_by_params_and_ratios_pair_repetitions():
    runs = [rep("b", 2, 4.0, kind="b"), rep("a", 1, 10.0, kind="a"), rep("b", 1, 2.0, kind="b"),
            rep("a", 2, 30.0, kind="a"), rep("a", 3, 99.0, kind="a")]
    a, b = per_repetition(runs, ("kind",), lambda run: {"value": run["value"]})
    assert (a["kind"], a["value"], b["value"]) == ("a", [10.0, 30.0, 99.0], [2.0, 4.0])
    assert paired_ratios(a, b, "value") == [5.0, 7.5]          # repetition 3 has no partner
    assert repetitions(runs) == 3


def test_labels_quote_the_range_and_mark_a_factor_of_two():
    assert quoted(spread([8.31])) == "8.3"
    assert quoted(spread([8.0, 8.3, 9.0]), 1, " ms") == "8.3 ms (8.0 ms-9.0 ms over 3 runs)"
    assert quoted(spread([13, 24, 71]), 0, "x") == "24x (noisy: 13x-71x over 3 runs)"
    assert noisy_note(spread([10, 19])) == "" and noisy_note(spread([10, 20])) == "noisy: 10-20 over 2 runs"
    runs = [{"run": "a", "machine": {"cpu_count": 2, "cpu_model": "EPYC"}, "git": {"commit": "0123456789"},
             "size": "smoke"}]
    assert machine_line(runs) == "2 cores EPYC, commit 01234567, size smoke, 1 repetition"
    assert machine_line(runs * 3).endswith("3 repetitions")
    assert marked(runs, "x") == "x" and marked([{"valid": False}], "x") == "x [INVALID run]"


def test_figure_helpers_draw_on_the_axes_they_are_given(tmp_path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots()
    bars = median_bars(ax, [0, 1], [spread([1, 3]), spread([5, 6])])
    assert [bar.get_height() for bar in bars] == [2, 5.5] and [bar.get_hatch() for bar in bars] == ["//", None]
    assert range_bars(ax, [0], [spread([4])]) is None             # one run: no range to show
    [line] = cdf(ax, [3, 1, 2])
    assert list(line.get_xdata()) == [1, 2, 3] and list(line.get_ydata()) == [1 / 3, 2 / 3, 1]
    assert reference_line(ax, 150, "article").get_label() == "article"
    assert reference_line(ax, 50, "one way", vertical=True).get_xdata()[0] == 50
    assert save(fig, tmp_path, "f.png").stat().st_size > 1000
    plt.close(fig)


def test_a_skipped_scenario_reads_as_not_run_with_its_reason(tmp_path):
    import json

    from load.results import NotRun, load_runs
    (tmp_path / "failover").mkdir()
    (tmp_path / "failover" / "skipped.json").write_text(json.dumps({"size": "smoke", "missing": ["root: run as root"]}))
    with pytest.raises(NotRun, match="'failover' not run: root: run as root"):
        load_runs(tmp_path, "failover")
    with pytest.raises(FileNotFoundError, match="no 'latency' results"):
        load_runs(tmp_path, "latency")
