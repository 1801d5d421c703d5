"""A percentage off with a cap: ``{"rule": "percentage", "percent": 50, "cap_cents": 2000}``
(the article's 50%-off coupon; the cap keeps a large order from taking the whole budget)."""
from demos.coupon_system.registry import Rule, cents, register


@register
class Percentage(Rule):
    name = "percentage"

    def __init__(self, params):
        percent = params.get("percent")
        if isinstance(percent, bool) or not isinstance(percent, int) or not 1 <= percent <= 100:
            raise ValueError("percent must be a whole number from 1 to 100")
        self.percent = percent
        self.cap_cents = cents(params, "cap_cents", minimum=1)

    def apply(self, order, discount_cents):
        return discount_cents + min(self.cap_cents, order.amount_cents * self.percent // 100)
