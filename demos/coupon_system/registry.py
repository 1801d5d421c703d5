"""The rules registry: how the stable core meets the volatile rules without importing them.

A rule is a class in a module of its own that registers itself by name::

    from demos.coupon_system.registry import NotApplicable, Rule, register

    @register
    class MinSpend(Rule):
        name = "min_spend"
        def __init__(self, params):           # validate the batch's params; ValueError -> 400
            self.min_cents = cents(params, "min_cents")
        def apply(self, order, discount_cents):
            if order.amount_cents < self.min_cents:
                raise NotApplicable(f"needs an order of at least {self.min_cents} cents")
            return discount_cents

``load()`` imports every module of the ``demos.coupon_system.rules`` package and of every folder
in ``COUPON_RULES_PATH``; the core asks ``build(specs)`` for a batch's rules and never names one.
Adding a kind is one new module, with no change to the core or its tests.

Why a registry and not Python entry points: entry points need an installed distribution (a
``pip install`` after every change) and this repository is run from its checkout; the registry
finds a new module as soon as it is saved, and ``COUPON_RULES_PATH`` does for a folder outside
the package what an entry point does for another distribution.
"""
import importlib
import importlib.util
import os
import pkgutil
import re
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

RULES_PACKAGE = "demos.coupon_system.rules"
NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")
_rules: dict[str, type] = {}
_loaded_lock = threading.Lock()
_loaded: set[str] = set()


class NotApplicable(Exception):
    """The coupon does not apply to this order; the message says why (answered 422)."""


@dataclass(frozen=True)
class Order:
    """What a rule sees of the order a coupon is redeemed against."""
    order_id: str
    user_id: str
    amount_cents: int
    first_order: bool


class Rule:
    """One rule of a batch. ``__init__(params)`` validates the batch's parameters (ValueError
    says what is wrong); ``apply(order, discount_cents)`` returns the discount so far, changed or
    not, or raises NotApplicable."""
    name = ""

    def __init__(self, params: dict):
        pass

    def apply(self, order: Order, discount_cents: int) -> int:
        return discount_cents


def register(rule: type) -> type:
    """Class decorator: make ``rule`` known by its ``name``."""
    if not isinstance(rule.name, str) or not NAME.fullmatch(rule.name):
        raise ValueError(f"rule {rule.__name__} needs a name of lower-case words joined by _")
    known = _rules.get(rule.name)
    if known is not None and known.__qualname__ != rule.__qualname__:
        raise ValueError(f"two rules are named {rule.name!r}: {known.__module__} and {rule.__module__}")
    _rules[rule.name] = rule
    return rule


def cents(params: dict, key: str, *, minimum: int = 0, maximum: int = 10**9) -> int:
    """``params[key]`` as a whole number of cents within bounds; ValueError saying what is wrong."""
    value = params.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise ValueError(f"{key} must be a whole number of cents from {minimum} to {maximum}")
    return value


def load() -> dict[str, type]:
    """Import the rules package's modules and those of COUPON_RULES_PATH's folders (once each);
    return the rules by name."""
    with _loaded_lock:
        package = importlib.import_module(RULES_PACKAGE)
        for module in pkgutil.iter_modules(package.__path__):
            if f"{RULES_PACKAGE}.{module.name}" not in _loaded:
                importlib.import_module(f"{RULES_PACKAGE}.{module.name}")
                _loaded.add(f"{RULES_PACKAGE}.{module.name}")
        for folder in filter(None, os.environ.get("COUPON_RULES_PATH", "").split(os.pathsep)):
            for path in sorted(Path(folder).glob("*.py")):
                if str(path) in _loaded or path.name.startswith("_"):
                    continue
                name = f"coupon_rules_{abs(hash(str(path.parent)))}_{path.stem}"
                spec = importlib.util.spec_from_file_location(name, path)
                module = importlib.util.module_from_spec(spec)
                sys.modules[name] = module
                spec.loader.exec_module(module)
                _loaded.add(str(path))
    return dict(_rules)


def build(specs) -> list[Rule]:
    """A batch's rules from their JSON specs (``[{"rule": "percentage", "percent": 50, ...}]``);
    ValueError naming the rule and what is wrong with it."""
    known = load()
    if not isinstance(specs, list) or not specs or len(specs) > 10:
        raise ValueError(f"rules must be a list of 1 to 10 rules like {{\"rule\": \"fixed_amount\", "
                         f"\"amount_cents\": 500}}; known rules: {', '.join(sorted(known))}")
    built = []
    for spec in specs:
        name = spec.get("rule") if isinstance(spec, dict) else None
        if not isinstance(name, str) or name not in known:
            raise ValueError(f"unknown rule {name!r}: known rules are {', '.join(sorted(known))}")
        try:
            built.append(known[name](spec))
        except ValueError as problem:
            raise ValueError(f"rule {name}: {problem}") from None
    return built


def discount(rules: list[Rule], order: Order) -> int:
    """The discount the rules give ``order``, never more than its amount; NotApplicable when a
    rule refuses."""
    cents_off = 0
    for rule in rules:
        cents_off = rule.apply(order, cents_off)
    return max(0, min(cents_off, order.amount_cents))
