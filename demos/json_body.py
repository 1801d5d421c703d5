"""Request bodies as JSON, for every chapter's services: bad input is a ``BadJson`` (answer 400),
never a 500, whatever the bytes.

    try:
        order = json_body.object_of(request.get_data(), example='{"product": "apple", "quantity": 2}')
    except json_body.BadJson as problem:
        return {"error": str(problem)}, 400

Guards what ``json.loads`` lets through: nesting deep enough to exhaust Python's recursion
(RecursionError, which Flask's ``silent=True`` does not catch), bodies over a size bound, and lone
surrogates (``"\\ud800"`` parses, then fails when stored or encoded as UTF-8). Strings that must
match a pattern still need ``re.fullmatch`` (``$`` matches before a final newline): ``text()``.
"""
import json
import re
from typing import Any

MAX_BODY_BYTES = 64 * 1024
MAX_DEPTH = 32


class BadJson(ValueError):
    """The body is not what was asked for; the message says what to send instead."""


def depth_ok(text: str, limit: int = MAX_DEPTH) -> bool:
    """True if no array or object in ``text`` is nested deeper than ``limit`` (a linear scan that
    skips brackets inside strings; no recursion)."""
    depth, in_string, escaped = 0, False, False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > limit:
                return False
        elif char in "]}":
            depth -= 1
    return True


def _no_lone_surrogate(value: Any) -> None:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise BadJson("the body holds a string that is not valid Unicode (a lone surrogate such as \\ud800)") from None
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def parse(data: bytes, max_bytes: int = MAX_BODY_BYTES) -> Any:
    """The JSON value in ``data`` (UTF-8), or BadJson saying what is wrong."""
    if len(data) > max_bytes:
        raise BadJson(f"the body is larger than {max_bytes:,} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise BadJson("the body must be UTF-8 JSON") from None
    if not depth_ok(text):
        raise BadJson(f"JSON nested deeper than {MAX_DEPTH} levels")
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as problem:
        raise BadJson(f"malformed JSON: {problem}"[:120]) from None
    _no_lone_surrogate(value)
    return value


def object_of(data: bytes, example: str, max_bytes: int = MAX_BODY_BYTES) -> dict:
    """A JSON object from ``data``; anything else is BadJson naming ``example``."""
    try:
        value = parse(data, max_bytes)
    except BadJson as problem:
        raise BadJson(f"{problem}; send a JSON object like {example}") from None
    if not isinstance(value, dict):
        raise BadJson(f"send a JSON object like {example}")
    return value


def text(body: dict, key: str, pattern: re.Pattern, what: str) -> str:
    """``body[key]`` if it is a string that fully matches ``pattern`` (no trailing newline, no
    control characters unless the pattern allows them); else BadJson with ``what`` it must be."""
    value = body.get(key)
    if not isinstance(value, str) or not value.isprintable() or not pattern.fullmatch(value):
        raise BadJson(f"{key} must be {what}")
    return value


def whole(body: dict, key: str, low: int, high: int, default: Any = None) -> int:
    """``body[key]`` if it is a whole number (not a bool, not a float) from ``low`` to ``high``."""
    value = body.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise BadJson(f"{key} must be a whole number from {low:,} to {high:,}")
    return value
