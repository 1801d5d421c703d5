"""Rules are plug-ins: the core imports no rule module, each shipped rule computes its discount,
and a rule dropped into a folder on COUPON_RULES_PATH works with no change to the core."""
import ast
import textwrap
from pathlib import Path

import pytest

from demos.coupon_system import atomic, registry
from demos.coupon_system.app import build
from demos.coupon_system.settings import Settings

CORE = Path(registry.__file__).parent
RULE_MODULES = {path.stem for path in (CORE / "rules").glob("*.py") if path.stem != "__init__"}


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = ("." * node.level) + (node.module or "")
            names |= {base} | {f"{base}.{alias.name}".replace("..", ".") for alias in node.names}
    return names


def test_the_core_imports_no_rule_module():
    assert RULE_MODULES >= {"fixed_amount", "percentage", "min_spend", "first_order_only"}
    for path in CORE.glob("*.py"):
        for name in imported_modules(path):
            assert "rules" not in name.split("."), f"{path.name} imports {name}: the core must not know a rule"


def order(amount_cents, first_order=False):
    return registry.Order("o-1", "u-1", amount_cents, first_order)


@pytest.mark.parametrize("specs, amount, expected", [
    ([{"rule": "fixed_amount", "amount_cents": 500}], 3000, 500),
    ([{"rule": "fixed_amount", "amount_cents": 500}], 300, 300),                       # never below zero to pay
    ([{"rule": "percentage", "percent": 50, "cap_cents": 2000}], 3000, 1500),
    ([{"rule": "percentage", "percent": 50, "cap_cents": 2000}], 9000, 2000),           # the cap
    ([{"rule": "min_spend", "min_cents": 5000}, {"rule": "fixed_amount", "amount_cents": 800}], 5000, 800),
])
def test_each_shipped_rule_gives_its_discount(specs, amount, expected):
    assert registry.discount(registry.build(specs), order(amount)) == expected


@pytest.mark.parametrize("specs, the_order, reason", [
    ([{"rule": "min_spend", "min_cents": 5000}, {"rule": "fixed_amount", "amount_cents": 800}], order(4999), "at least 5000"),
    ([{"rule": "first_order_only"}, {"rule": "fixed_amount", "amount_cents": 800}], order(4999), "first order"),
])
def test_a_rule_refuses_an_order_it_does_not_apply_to(specs, the_order, reason):
    with pytest.raises(registry.NotApplicable, match=reason):
        registry.discount(registry.build(specs), the_order)
    assert registry.discount(registry.build(specs[1:]), the_order) == 800


@pytest.mark.parametrize("specs, message", [
    ([{"rule": "no_such_rule"}], "unknown rule 'no_such_rule'"),
    ([{"rule": "percentage", "percent": 150, "cap_cents": 1}], "percent must be"),
    ([{"rule": "fixed_amount", "amount_cents": -1}], "amount_cents must be"),
    ([{"rule": "fixed_amount", "amount_cents": True}], "amount_cents must be"),
    ([], "rules must be a list"),
    ("fixed_amount", "rules must be a list"),
])
def test_bad_rule_parameters_are_refused_with_the_reason(specs, message):
    with pytest.raises(ValueError, match=message):
        registry.build(specs)


def test_a_rule_in_a_temporary_folder_works_without_touching_the_core(tmp_path, monkeypatch):
    folder = tmp_path / "more_rules"
    folder.mkdir()
    (folder / "buy_more_save_more.py").write_text(textwrap.dedent('''
        from demos.coupon_system.registry import Rule, cents, register

        @register
        class BuyMoreSaveMore(Rule):
            """10% off per full 100.00 spent, up to a cap."""
            name = "buy_more_save_more"

            def __init__(self, params):
                self.cap_cents = cents(params, "cap_cents", minimum=1)

            def apply(self, order, discount_cents):
                return discount_cents + min(self.cap_cents, order.amount_cents * (order.amount_cents // 10000) // 10)
    '''))
    monkeypatch.setenv("COUPON_RULES_PATH", str(folder))
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'coupons.db'}")
    app, _ = build(atomic.STRATEGY, Settings.from_env())
    client = app.test_client()
    batch = client.post("/batches", json={"name": "new kind", "stock": 5,
                                          "rules": [{"rule": "buy_more_save_more", "cap_cents": 5000}]})
    assert batch.status_code == 201, batch.json
    code = client.post(f"/batches/{batch.json['id']}/claim", json={"user": "u-1"}).json["code"]
    used = client.post(f"/coupons/{code}/redeem", json={"user": "u-1", "order_id": "o-1", "amount_cents": 20000})
    assert used.status_code == 201 and used.json["discount_cents"] == 4000 and used.json["pay_cents"] == 16000
