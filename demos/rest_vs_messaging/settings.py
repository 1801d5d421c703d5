"""Configuration from the environment, one name per setting.

``DATA_DIR`` holds each service's SQLite file (``<service>.db``) unless ``DATABASE_URL`` names one
database for all of them (their tables do not collide); ``BROKER_URL`` picks the broker (the
embedded filesystem broker by default); ``QUEUE_PREFIX`` names the exchange and queues so that two
stacks (or two tests) share a broker safely. The URLs of the other services: ``SUBSCRIBERS_URL``,
``NOTIFIER_URL``, ``EMAIL_URL``, ``ORCHESTRATOR_URL``; the sink: ``SMTP_PORT``.
"""
import os
from dataclasses import dataclass

DEFAULT_DATA_DIR = os.path.join("var", "rest_vs_messaging")


@dataclass(frozen=True)
class Settings:
    data_dir: str
    database_url: str
    broker_url: str
    queue_prefix: str
    subscribers_url: str
    notifier_url: str
    email_url: str
    orchestrator_url: str
    smtp_port: int

    @classmethod
    def from_env(cls) -> "Settings":
        data_dir = os.environ.get("DATA_DIR") or DEFAULT_DATA_DIR
        return cls(
            data_dir=data_dir,
            database_url=os.environ.get("DATABASE_URL", ""),
            broker_url=os.environ.get("BROKER_URL") or f"filesystem://{data_dir}/broker",
            queue_prefix=os.environ.get("QUEUE_PREFIX") or "restock",
            subscribers_url=os.environ.get("SUBSCRIBERS_URL", "http://127.0.0.1:8001"),
            notifier_url=os.environ.get("NOTIFIER_URL", "http://127.0.0.1:8002"),
            email_url=os.environ.get("EMAIL_URL", "http://127.0.0.1:8003"),
            orchestrator_url=os.environ.get("ORCHESTRATOR_URL", "http://127.0.0.1:8004"),
            smtp_port=int(os.environ.get("SMTP_PORT", 8025)),
        )

    def database(self, service: str) -> str:
        """The service's database URL: the shared ``DATABASE_URL``, else its own SQLite file."""
        return self.database_url or f"sqlite:///{self.data_dir}/{service}.db"
