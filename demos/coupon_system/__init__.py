"""Chapter 3, a coupon system that never oversells (构架稳定与可扩展的优惠券系统).

Operators create batches (templates: stock, validity window, rules); users claim one coupon per
batch and redeem it once against an order. The three claim strategies serve the same API:

- ``naive``: read the stock, check, then write, as separate autocommit statements. BROKEN on
  purpose: under concurrency it oversells and gives a user two coupons (see ``naive.py``);
- ``atomic``: a conditional update of the stock and a unique constraint per user and batch, in
  one transaction of the database;
- ``reservation``: one Lua script in Redis checks the stock and the user together; a consumer
  (``consumer.py``) writes the coupon rows through kombu at a steady rate.

The stable core (``app.py``, ``store.py``, the strategies) knows no coupon kind: discounts and
conditions are plug-ins in ``rules/``, found by ``registry.py``.
"""
