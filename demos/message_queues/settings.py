"""Configuration from the environment, the way a twelve-factor service reads it.

``DATABASE_URL`` (``sqlite:///path`` or ``postgresql://user@host:port/dbname``) and ``BROKER_URL``
(a kombu URL) choose the real parts; each step's cost is ``STEP_MS`` (50 ms, the article's figure)
unless ``DB_WRITE_MS``, ``EMAIL_MS`` or ``SMS_MS`` says otherwise. ``QUEUE_PREFIX`` names the job
queues (``registration.email``, ``registration.sms``).
"""
import os
from dataclasses import dataclass

DEFAULT_DATA_DIR = os.path.join("var", "message_queues")


def _ms(name: str, default: float) -> float:
    return float(os.environ.get(name, default)) / 1000.0


@dataclass(frozen=True)
class Settings:
    database_url: str
    broker_url: str
    db_write_s: float
    email_s: float
    sms_s: float
    visibility_timeout_s: float
    queue_prefix: str = "registration"

    @classmethod
    def from_env(cls) -> "Settings":
        step_ms = float(os.environ.get("STEP_MS", 50))
        data_dir = os.environ.get("DATA_DIR", DEFAULT_DATA_DIR)
        return cls(
            database_url=os.environ.get("DATABASE_URL") or f"sqlite:///{data_dir}/registrations.db",
            broker_url=os.environ.get("BROKER_URL") or f"filesystem://{data_dir}/broker",
            db_write_s=_ms("DB_WRITE_MS", step_ms),
            email_s=_ms("EMAIL_MS", step_ms),
            sms_s=_ms("SMS_MS", step_ms),
            visibility_timeout_s=float(os.environ.get("BROKER_VISIBILITY_TIMEOUT", 30)),
            queue_prefix=os.environ.get("QUEUE_PREFIX") or "registration",
        )
