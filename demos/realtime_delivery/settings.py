"""Configuration from the environment, the way a twelve-factor service reads it.

- ``DATABASE_URL`` (``sqlite:///path``; default ``$DATA_DIR/messages.db``, ``DATA_DIR`` defaults
  to ``var/realtime_delivery``);
- the window every client can resume from: ``WINDOW_LENGTH`` messages (1000) no older than
  ``WINDOW_AGE_S`` seconds (3600) per conversation;
- ``LONG_POLL_TIMEOUT`` (90 s, the article's hold limit) and ``SSE_HEARTBEAT_S`` (15 s);
- WebSocket limits: ``WS_MAX_PENDING_BYTES`` (256 KiB of unsent frames before a slow client is
  closed with 1013), ``WS_MAX_FRAME_BYTES`` (64 KiB per incoming message, else close 1009) and
  ``WS_HELLO_TIMEOUT_S`` (10 s to send the handshake and ``{"after": N}``);
- ``BROKER_URL`` (unset by default): ``redis://host:port/db`` or ``amqp://user:pass@host:port//``
  to ring the other server processes' doorbells through a broker (see ``fanout``); unset, a
  stored message wakes only this process's clients, with nothing in between.
"""
import os
from dataclasses import dataclass

DEFAULT_DATA_DIR = os.path.join("var", "realtime_delivery")


@dataclass(frozen=True)
class Settings:
    database_url: str
    window_length: int = 1000
    window_age_s: float = 3600.0
    long_poll_timeout_s: float = 90.0
    sse_heartbeat_s: float = 15.0
    ws_max_pending_bytes: int = 256 * 1024
    ws_max_frame_bytes: int = 64 * 1024
    ws_hello_timeout_s: float = 10.0
    broker_url: str = ""

    @classmethod
    def from_env(cls) -> "Settings":
        env = os.environ.get
        data_dir = env("DATA_DIR", DEFAULT_DATA_DIR)
        return cls(
            database_url=env("DATABASE_URL") or f"sqlite:///{data_dir}/messages.db",
            window_length=int(env("WINDOW_LENGTH", 1000)),
            window_age_s=float(env("WINDOW_AGE_S", 3600)),
            long_poll_timeout_s=float(env("LONG_POLL_TIMEOUT", 90)),
            sse_heartbeat_s=float(env("SSE_HEARTBEAT_S", 15)),
            ws_max_pending_bytes=int(env("WS_MAX_PENDING_BYTES", 256 * 1024)),
            ws_max_frame_bytes=int(env("WS_MAX_FRAME_BYTES", 64 * 1024)),
            ws_hello_timeout_s=float(env("WS_HELLO_TIMEOUT_S", 10)),
            broker_url=env("BROKER_URL", ""),
        )
