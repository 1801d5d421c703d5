"""The e-mail provider, modelled as a real SMTP server (aiosmtpd) on loopback: it answers each
message after ``--delay-ms`` and refuses a share of them (``--refuse-share``, a temporary 451 that
a sender must retry). Every message it receives is one row of ``sink_attempts``, accepted or not:
the raw record the audit counts, so a duplicate cannot hide. An accepted message whose
``X-Idempotency-Key`` was accepted before is a harmless repeat (real providers take such a key);
the books count it apart.
Run: python -m demos.rest_vs_messaging.sink --port 8025 --delay-ms 5
"""
import argparse
import asyncio
import email
import random
import signal
import threading
import time

from aiosmtpd.controller import Controller

from ..message_queues.store import Database
from .settings import Settings

SCHEMA = """
CREATE TABLE IF NOT EXISTS sink_attempts (
    id {id},
    idempotency_key TEXT NOT NULL,
    recipient TEXT NOT NULL,
    accepted INTEGER NOT NULL,
    received_at DOUBLE PRECISION NOT NULL
)
"""


class Sink:
    def __init__(self, database: Database, delay_s: float, refuse_share: float, seed: int = 5):
        self.database, self.delay_s, self.refuse_share = database, delay_s, refuse_share
        self.random = random.Random(seed)

    async def handle_DATA(self, server, session, envelope):
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        message = email.message_from_bytes(envelope.content)
        key = message.get("X-Idempotency-Key", "")
        accepted = self.random.random() >= self.refuse_share
        with self.database.transaction() as db:
            for recipient in envelope.rcpt_tos:
                db.execute("INSERT INTO sink_attempts (idempotency_key, recipient, accepted, received_at)"
                           " VALUES (?, ?, ?, ?)", (key, recipient, int(accepted), time.time()))
        return "250 OK queued" if accepted else "451 4.3.0 busy, try again later"


def main() -> None:
    parser = argparse.ArgumentParser(description="A local SMTP sink that records every attempt.")
    parser.add_argument("--port", type=int, default=8025)
    parser.add_argument("--delay-ms", type=float, default=5.0, help="answer each message after this long")
    parser.add_argument("--refuse-share", type=float, default=0.0,
                        help="share of messages refused with a temporary 451 (0 to 1)")
    args = parser.parse_args()
    if not 0 <= args.refuse_share <= 1:
        parser.error("--refuse-share must be from 0 to 1")
    settings = Settings.from_env()
    sink = Sink(Database(settings.database("sink"), schema=SCHEMA), args.delay_ms / 1000, args.refuse_share)
    controller = Controller(sink, hostname="127.0.0.1", port=args.port, ready_timeout=30)
    controller.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(f"sink ready on smtp://127.0.0.1:{args.port}, delay {args.delay_ms:g} ms, "
          f"refusing {args.refuse_share:.0%}", flush=True)
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()
