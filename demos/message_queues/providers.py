"""The e-mail and SMS providers, modelled: a fixed latency, then the send is recorded.

Real providers are remote services; here each call costs its configured latency (50 ms by
default) and is written to the audit. Every call is kept as a raw attempt; the idempotency key
makes a repeated call harmless, as real providers' idempotency keys do: only the first call for a
key counts as an effective send.
"""
import time
from dataclasses import dataclass

from .store import Database


@dataclass
class Provider:
    channel: str            # "email" or "sms"
    latency_s: float
    database: Database

    def send(self, recipient: str, idempotency_key: str) -> bool:
        time.sleep(self.latency_s)
        return self.database.record_attempt(self.channel, recipient, idempotency_key)
