"""The naive strategy: BROKEN ON PURPOSE, to show what the others prevent.

Read the stock, check it, then write the coupon and the new count, each an autocommit statement
of its own and no unique index. Requests served by 8 threads at once read the same stock before
any of them writes: the batch is oversold, and a user whose two clicks arrive together gets two
coupons. ``RACE_WINDOW_MS`` (labelled, 0 by default) sleeps between the read and the write, the
time a real service spends on other calls there, so the race shows on a small machine too.
Run: RACE_WINDOW_MS=5 python -m demos.coupon_system.naive --port 8000
"""
from .app import Services, Strategy, serve
from .store import Batch


def claim(services: Services, batch: Batch, user: str) -> tuple[str, bool]:
    with services.timings.spent("db"):
        return services.database.claim_naive(batch.id, user, services.settings.race_window_s)


STRATEGY = Strategy("naive", claim, one_per_user=False)

if __name__ == "__main__":
    serve(STRATEGY, __doc__)
