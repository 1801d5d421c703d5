"""A fixed amount off (满减's discount part): ``{"rule": "fixed_amount", "amount_cents": 500}``."""
from demos.coupon_system.registry import Rule, cents, register


@register
class FixedAmount(Rule):
    name = "fixed_amount"

    def __init__(self, params):
        self.amount_cents = cents(params, "amount_cents", minimum=1)

    def apply(self, order, discount_cents):
        return discount_cents + self.amount_cents
