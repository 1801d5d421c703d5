"""demos/json_body.py: every kind of bad body is a BadJson, never another exception."""
import re

import pytest
from hypothesis import given, strategies as st

from demos import json_body

NAME = re.compile(r"[a-z]{1,8}")


@pytest.mark.parametrize("data", [
    b"", b"{", b"\xff", b"[" * 5000 + b"]" * 5000, b"[" * 33 + b"]" * 33,
    b'{"a": "\\ud800"}', b'{"\\udfff": 1}', b'[["\\ud800"]]', b"x" * (json_body.MAX_BODY_BYTES + 1),
])
def test_bad_bodies_are_bad_json(data):
    with pytest.raises(json_body.BadJson):
        json_body.parse(data)


def test_nesting_at_the_limit_parses_and_brackets_in_strings_do_not_count():
    assert json_body.parse(b"[" * 32 + b"]" * 32)
    assert json_body.parse(b'{"a": "' + b"[" * 100 + b'"}') == {"a": "[" * 100}


def test_object_of_refuses_other_values_with_the_example():
    with pytest.raises(json_body.BadJson, match='like {"a": 1}'):
        json_body.object_of(b"[1]", example='{"a": 1}')
    assert json_body.object_of(b'{"a": 1}', example="") == {"a": 1}


@pytest.mark.parametrize("value", ["ab\n", "\nab", "a b", "ab\x00", "", "abcdefghi", 5, None])
def test_text_needs_a_full_match(value):
    with pytest.raises(json_body.BadJson):
        json_body.text({"k": value}, "k", NAME, "a short name")
    assert json_body.text({"k": "ab"}, "k", NAME, "a short name") == "ab"


@pytest.mark.parametrize("value", [True, 1.0, "1", -1, 11, None])
def test_whole_refuses_bools_floats_and_out_of_range(value):
    with pytest.raises(json_body.BadJson):
        json_body.whole({"k": value}, "k", 0, 10)
    assert json_body.whole({"k": 10}, "k", 0, 10) == 10


@given(st.binary(max_size=300))
def test_any_bytes_parse_or_are_bad_json(data):
    try:
        json_body.parse(data)
    except json_body.BadJson:
        pass


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(alphabet=st.sampled_from("a\ud800\udfff\n\x00")),
                    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=3), children, max_size=3),
                    max_leaves=10))
def test_any_json_value_parses_or_is_bad_json(value):
    import json
    try:
        json_body.parse(json.dumps(value).encode())
    except json_body.BadJson:
        pass
