"""What a client may send, checked the same way for every transport.

Each check returns the clean value or raises ``BadInput`` with the HTTP status to answer (the
WebSocket transport maps it to a close code: 413 → 1009, anything else → 1008).
"""
import math
import re
from dataclasses import dataclass
from typing import Optional

CONVERSATION_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
SEQ = re.compile(r"^[0-9]{1,18}$")      # fits SQLite's 64-bit integers
MAX_BODY_BYTES = 4096
MAX_SENDER_CHARS = 64


class BadInput(ValueError):
    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class NewMessage:
    sender: str
    body: str
    client_ts: Optional[float] = None


def conversation_id(value) -> str:
    if not isinstance(value, str) or not CONVERSATION_ID.match(value):
        raise BadInput("a conversation id is 1 to 64 letters, digits, '-' or '_'")
    return value


def seq(value, name: str = "after") -> int:
    """A sequence number a client holds: a non-negative integer (or its decimal digits)."""
    if value is None:
        return 0
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**18:
        return value
    if isinstance(value, str) and SEQ.match(value):
        return int(value)
    raise BadInput(f"{name} must be a non-negative integer: the last sequence number you have (0 for none)")


def timeout(value: Optional[str], cap_s: float) -> float:
    """The long poll's hold time: ``cap_s`` unless the client asks for less."""
    if value is None:
        return cap_s
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not 0 <= seconds < math.inf:
        raise BadInput(f"timeout must be a number of seconds from 0 to {cap_s:g}")
    return min(seconds, cap_s)


def new_message(obj) -> NewMessage:
    if not isinstance(obj, dict):
        raise BadInput('a message is a JSON object like {"sender": "ann", "body": "hello"}')
    sender, body, client_ts = obj.get("sender"), obj.get("body"), obj.get("client_ts")
    if not isinstance(sender, str) or not sender.strip() or len(sender) > MAX_SENDER_CHARS:
        raise BadInput(f"sender must be a non-empty string of at most {MAX_SENDER_CHARS} characters")
    if not isinstance(body, str) or not body:
        raise BadInput("body must be a non-empty string")
    if len(body.encode("utf-8")) > MAX_BODY_BYTES:
        raise BadInput(f"body is larger than {MAX_BODY_BYTES} bytes", status=413)
    if client_ts is not None and (isinstance(client_ts, bool) or not isinstance(client_ts, (int, float))
                                  or not math.isfinite(client_ts)):
        raise BadInput("client_ts, if given, must be a number (seconds since the epoch)")
    return NewMessage(sender, body, None if client_ts is None else float(client_ts))
