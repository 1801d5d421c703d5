"""What a client may send, checked the same way for every transport.

Each check returns the clean value or raises ``BadInput`` with the HTTP status to answer (the
WebSocket transport maps it to a close code: 413 → 1009, a body that is not JSON → 1007, anything
else → 1008). Plain functions, no Flask: the routes and the WebSocket call them, and the unit tests
(and mutation testing) reach them directly.

- Patterns are matched with ``re.fullmatch``: ``$`` would let a trailing newline through.
- Ids (conversation, client id) are letters, digits and a few marks; no whitespace or control
  character anywhere. A sender name may hold spaces inside, but not at either end, and no control
  character.
- Every string of a message must be encodable as UTF-8: JSON's ``"\\ud800"`` decodes to a lone
  surrogate, which no database stores (and no client could read back).
- A JSON body nested deeper than ``MAX_JSON_DEPTH`` is refused before it is parsed: Python's parser
  would recurse until ``RecursionError``, which Flask's ``silent=True`` does not catch.
"""
import json
import math
import re
from dataclasses import dataclass
from typing import Optional

from ..json_body import depth_ok as json_depth_ok   # one linear nesting scan for every chapter

CONVERSATION_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
SEQ = re.compile(r"[0-9]{1,18}")        # fits SQLite's 64-bit integers
SECONDS = re.compile(r"[0-9]{1,6}(\.[0-9]{1,6})?")
CLIENT_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
MAX_BODY_BYTES = 4096
MAX_SENDER_CHARS = 64
MAX_JSON_DEPTH = 32
MAX_SEQ = 10**18
# The client's idempotency key for a send, the same field on every transport: the WebSocket send
# frame and the HTTP send's JSON body. A resend with the same id (same conversation and sender)
# is not stored again and is answered with the original sequence number.
CLIENT_ID_FIELD = "id"


class BadInput(ValueError):
    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


class NotJson(BadInput):
    """The bytes are not UTF-8 JSON at all (a WebSocket closes with 1007, not 1008)."""


@dataclass(frozen=True)
class NewMessage:
    sender: str
    body: str
    client_ts: Optional[float] = None
    client_id: Optional[str] = None


def utf8(value: str, name: str) -> str:
    """``value`` if it can be stored and sent back as UTF-8 (no lone surrogate)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise BadInput(f"{name} is not valid Unicode (a lone surrogate such as \\ud800)") from None
    return value


def json_value(data: bytes):
    """The JSON value in ``data`` (a request body or a WebSocket text frame), else BadInput."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise NotJson("the body must be UTF-8") from None
    if not json_depth_ok(text, MAX_JSON_DEPTH):
        raise BadInput(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as problem:
        raise NotJson(f"malformed JSON: {problem}"[:120]) from None


def json_object(data: bytes, example: str) -> dict:
    """A JSON object from ``data``; anything else is BadInput naming ``example``."""
    try:
        value = json_value(data)
    except BadInput as problem:
        raise type(problem)(f"{problem}; send a JSON object like {example}") from None
    if not isinstance(value, dict):
        raise BadInput(f"send a JSON object like {example}")
    return value


def conversation_id(value) -> str:
    if not isinstance(value, str) or CONVERSATION_ID.fullmatch(value) is None:
        raise BadInput("a conversation id is 1 to 64 letters, digits, '-' or '_'")
    return value


def seq(value, name: str = "after") -> int:
    """A sequence number a client holds: a non-negative integer (or its decimal digits)."""
    if value is None:
        return 0
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < MAX_SEQ:
        return value
    if isinstance(value, str) and SEQ.fullmatch(value) is not None:
        return int(value)
    raise BadInput(f"{name} must be a non-negative integer: the last sequence number you have (0 for none)")


def timeout(value: Optional[str], cap_s: float) -> float:
    """The long poll's hold time: ``cap_s`` unless the client asks for less."""
    if value is None:
        return cap_s
    if not isinstance(value, str) or SECONDS.fullmatch(value) is None:
        raise BadInput(f"timeout must be a number of seconds from 0 to {cap_s:g}, like 2 or 0.5")
    return min(float(value), cap_s)


def client_id(value) -> Optional[str]:
    """The send's idempotency key: None (not given) or 1 to 64 letters, digits, '.', '_', ':' or '-'."""
    if value is None:
        return None
    if not isinstance(value, str) or CLIENT_ID.fullmatch(value) is None:
        raise BadInput(f"{CLIENT_ID_FIELD}, if given, is 1 to 64 letters, digits, '.', '_', ':' or '-', "
                       "chosen by the client once per message and sent again with every resend")
    return value


def sender(value) -> str:
    if (not isinstance(value, str) or not value or len(value) > MAX_SENDER_CHARS or value != value.strip()
            or CONTROL.search(value) is not None):
        raise BadInput(f"sender must be 1 to {MAX_SENDER_CHARS} characters, without control characters "
                       "or spaces at either end")
    return utf8(value, "sender")


def body(value) -> str:
    if not isinstance(value, str) or not value:
        raise BadInput("body must be a non-empty string")
    utf8(value, "body")
    if len(value.encode("utf-8")) > MAX_BODY_BYTES:
        raise BadInput(f"body is larger than {MAX_BODY_BYTES} bytes", status=413)
    return value


def client_ts(value) -> Optional[float]:
    if value is None:
        return None
    try:
        seconds = math.nan if isinstance(value, bool) or not isinstance(value, (int, float)) else float(value)
    except OverflowError:   # an integer with hundreds of digits
        seconds = math.inf
    if not math.isfinite(seconds):
        raise BadInput("client_ts, if given, must be a number (seconds since the epoch)")
    return seconds


NEW_CONVERSATION = '{"id": "general"}'
NEW_MESSAGE = '{"sender": "ann", "body": "hello", "id": "a1b2"}'


def new_conversation(data: bytes) -> str:
    """``POST /api/conversations``: the id in the request body."""
    return conversation_id(json_object(data, NEW_CONVERSATION).get("id"))


def send_request(data: bytes) -> NewMessage:
    """``POST /api/conversations/<cid>/messages``: the message in the request body."""
    return new_message(json_object(data, NEW_MESSAGE))


def new_message(obj) -> NewMessage:
    if not isinstance(obj, dict):
        raise BadInput('a message is a JSON object like {"sender": "ann", "body": "hello"}')
    return NewMessage(sender(obj.get("sender")), body(obj.get("body")), client_ts(obj.get("client_ts")),
                      client_id(obj.get(CLIENT_ID_FIELD)))
