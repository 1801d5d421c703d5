"""Only on a user's first order: ``{"rule": "first_order_only"}`` (the order service says which
order is the first; ``"first_order": true`` in the redeem request)."""
from demos.coupon_system.registry import NotApplicable, Rule, register


@register
class FirstOrderOnly(Rule):
    name = "first_order_only"

    def apply(self, order, discount_cents):
        if not order.first_order:
            raise NotApplicable("this coupon is for a first order only")
        return discount_cents
