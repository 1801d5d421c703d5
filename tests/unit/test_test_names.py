"""Test files have unique names: without packages, pytest refuses two files of one name at
collection ("import file mismatch"), and the whole suite stops before it starts."""
from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_no_two_test_files_share_a_name():
    names = Counter(path.name for path in TESTS.rglob("test_*.py") if "fixtures" not in path.parts)
    assert [name for name, n in names.items() if n > 1] == []
