"""Signed device tokens: ``<payload>.<signature>``, both URL-safe base64, the signature an HMAC-SHA256
of the payload with the shared secret (``PUSH_SECRET``). The payload is the JSON
``{"d": device, "t": [topics], "exp": unix seconds}``: a gateway trusts the device id and its topics
without asking anyone, so a device receives only its own and its topics' messages.

The API issues tokens (as an app's backend would after its own login); gateways verify them with the
same secret. ``verify`` raises ``BadToken`` with the reason (expired, bad signature, malformed).
"""
import base64
import hashlib
import hmac
import json
import os
import re
import time
from dataclasses import dataclass

DEFAULT_SECRET = "push-at-scale-demo-secret"   # loopback demo only: set PUSH_SECRET anywhere else
DEVICE_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
TOPIC_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")
MAX_TOKEN_CHARS = 4096


class BadToken(ValueError):
    pass


@dataclass(frozen=True)
class Claims:
    device: str
    topics: tuple
    expires: float


def secret() -> bytes:
    return os.environ.get("PUSH_SECRET", DEFAULT_SECRET).encode()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(key: bytes, payload: str) -> str:
    return _b64(hmac.new(key, payload.encode(), hashlib.sha256).digest())


def issue(device: str, topics=(), ttl_s: float = 3600, key: bytes = b"", now: float = 0.0) -> str:
    payload = _b64(json.dumps({"d": device, "t": sorted(topics), "exp": (now or time.time()) + ttl_s},
                              separators=(",", ":")).encode())
    return f"{payload}.{_signature(key or secret(), payload)}"


def verify(token: str, key: bytes = b"", now: float = 0.0) -> Claims:
    if not isinstance(token, str) or not 0 < len(token) <= MAX_TOKEN_CHARS or token.count(".") != 1:
        raise BadToken("malformed token: expected <payload>.<signature>")
    payload, signature = token.split(".")
    if not hmac.compare_digest(_signature(key or secret(), payload), signature):
        raise BadToken("bad signature")
    try:
        fields = json.loads(_unb64(payload))
        device, topics, expires = fields["d"], tuple(fields["t"]), float(fields["exp"])
    except (ValueError, KeyError, TypeError):
        raise BadToken("malformed token payload") from None
    if expires < (now or time.time()):
        raise BadToken("expired token: ask the API for a new one")
    return Claims(device, topics, expires)
