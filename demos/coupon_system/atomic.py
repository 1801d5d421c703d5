"""The atomic strategy: the database decides, in one transaction.

A conditional update takes one from the stock only while some is left
(``UPDATE batches SET issued = issued + 1 WHERE id = ? AND issued < stock``), and a unique index
on (batch, user) refuses a second coupon for the same user; both in one transaction, so a refused
insert gives the stock back. Every claim passes through the batch's one row: its lock is where
the time goes under a crowd.
Run: python -m demos.coupon_system.atomic --port 8000
"""
from .app import Services, Strategy, serve
from .store import Batch


def claim(services: Services, batch: Batch, user: str) -> tuple[str, bool]:
    with services.timings.spent("db"):
        return services.database.claim_atomic(batch.id, user)


STRATEGY = Strategy("atomic", claim, one_per_user=True)

if __name__ == "__main__":
    serve(STRATEGY, __doc__)
