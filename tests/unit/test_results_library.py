"""The one percentile (nearest rank), the spread over repetitions and claims.csv, on known inputs."""
import math

import pytest

from load.results import CLAIM_COLUMNS, Claims, percentile, read_claims, spread


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
