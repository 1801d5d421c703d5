"""Configuration from the environment: one name per setting, as every chapter reads it.

``DATABASE_URL`` (SQLite by default, ``postgresql://...`` for PostgreSQL), ``REDIS_URL`` (the
reservation strategy's store), ``BROKER_URL`` (kombu; the embedded filesystem broker by default),
``DATA_DIR`` (where the defaults keep their files), ``RACE_WINDOW_MS`` (the naive strategy only:
a pause between its read and its write, to make its race show on a small machine),
``WRITE_RATE`` (rows a second the consumer writes), ``BULK_RATE`` (bulk issuances a second),
``COUPON_RULES_PATH`` (more folders of rule modules, separated like PATH).
"""
import os
from dataclasses import dataclass

DEFAULT_DATA_DIR = os.path.join("var", "coupon_system")


@dataclass(frozen=True)
class Settings:
    database_url: str
    redis_url: str
    broker_url: str
    race_window_s: float
    write_rate: float
    bulk_rate: float
    visibility_timeout_s: float

    @classmethod
    def from_env(cls) -> "Settings":
        data_dir = os.environ.get("DATA_DIR") or DEFAULT_DATA_DIR
        return cls(
            database_url=os.environ.get("DATABASE_URL") or f"sqlite:///{data_dir}/coupons.db",
            redis_url=os.environ.get("REDIS_URL", ""),
            broker_url=os.environ.get("BROKER_URL") or f"filesystem://{data_dir}/broker",
            race_window_s=float(os.environ.get("RACE_WINDOW_MS", 0)) / 1000.0,
            write_rate=float(os.environ.get("WRITE_RATE", 500)),
            bulk_rate=float(os.environ.get("BULK_RATE", 200)),
            visibility_timeout_s=float(os.environ.get("BROKER_VISIBILITY_TIMEOUT", 30)),
        )
