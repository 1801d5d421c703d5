"""A minimum spend: ``{"rule": "min_spend", "min_cents": 5000}``; smaller orders are refused."""
from demos.coupon_system.registry import NotApplicable, Rule, cents, register


@register
class MinSpend(Rule):
    name = "min_spend"

    def __init__(self, params):
        self.min_cents = cents(params, "min_cents")

    def apply(self, order, discount_cents):
        if order.amount_cents < self.min_cents:
            raise NotApplicable(f"this coupon needs an order of at least {self.min_cents} cents, "
                                f"this one is {order.amount_cents}")
        return discount_cents
