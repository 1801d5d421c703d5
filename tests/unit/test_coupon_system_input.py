"""Bad input gets a clear 4xx with a reason and changes nothing: no stock taken, no coupon
written or used. In-process (Flask's test client) on SQLite, for the atomic and naive strategies."""
import json
import time

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from demos.coupon_system import atomic, naive
from demos.coupon_system.app import build
from demos.coupon_system.settings import Settings

HALF_OFF = [{"rule": "percentage", "percent": 50, "cap_cents": 2000}, {"rule": "min_spend", "min_cents": 1000}]


class Shop:
    """A service with one open batch (stock 3), one exhausted (stock 1), one expired, and a coupon
    held by "alice"."""

    def __init__(self, tmp_path, strategy):
        settings = Settings(f"sqlite:///{tmp_path / f'{strategy.name}.db'}", "", "", 0, 500, 200, 30)
        self.app, self.services = build(strategy, settings)
        self.client = self.app.test_client()
        self.open = self.batch(stock=3)
        self.exhausted = self.batch(stock=1)
        self.claim(self.exhausted, "bob")
        self.expired = self.batch(stock=3, valid_from=time.time() - 100, valid_until=time.time() - 10)
        self.code = self.claim(self.open, "alice").json["code"]

    def batch(self, **fields):
        answer = self.client.post("/batches", json={"name": "half off", "rules": HALF_OFF, **fields})
        assert answer.status_code == 201, answer.json
        return answer.json["id"]

    def claim(self, batch_id, user):
        return self.client.post(f"/batches/{batch_id}/claim", json={"user": user})

    def state(self):
        return self.services.database.audit(), self.services.database.coupon(self.code)


@pytest.fixture(params=[atomic.STRATEGY, naive.STRATEGY], ids=lambda strategy: strategy.name)
def shop(tmp_path, request):
    return Shop(tmp_path, request.param)


def test_bad_requests_get_a_4xx_with_a_reason_and_change_nothing(shop):
    before = shop.state()
    redeem = f"/coupons/{shop.code}/redeem"
    cases = [
        ("post", f"/batches/{shop.open}/claim", b"{not json", 400),
        ("post", f"/batches/{shop.open}/claim", b"[" * 3000 + b"]" * 3000, 413),
        ("post", f"/batches/{shop.open}/claim", b"[" * 2000, 400),
        ("post", f"/batches/{shop.open}/claim", json.dumps({"user": "a\n"}).encode(), 400),   # past a `$`
        ("post", f"/batches/{shop.open}/claim", json.dumps({"user": "\ud800"}).encode(), 400),   # lone surrogate
        ("post", f"/batches/{shop.open}/claim", json.dumps({"user": 7}).encode(), 400),
        ("post", f"/batches/{shop.open}/claim", json.dumps({"user": "x" * 65}).encode(), 400),
        ("post", "/batches/999/claim", json.dumps({"user": "carol"}).encode(), 404),
        ("post", f"/batches/{2**70}/claim", json.dumps({"user": "carol"}).encode(), 404),
        ("post", f"/batches/{shop.exhausted}/claim", json.dumps({"user": "carol"}).encode(), 409),
        ("post", f"/batches/{shop.expired}/claim", json.dumps({"user": "carol"}).encode(), 410),
        ("post", redeem, json.dumps({"user": "alice", "order_id": "o-1", "amount_cents": -1}).encode(), 400),
        ("post", redeem, json.dumps({"user": "alice", "order_id": "o-1", "amount_cents": "12.50"}).encode(), 400),
        ("post", redeem, json.dumps({"user": "alice", "order_id": "o-1", "amount_cents": 12.5}).encode(), 400),
        ("post", redeem, json.dumps({"user": "alice", "order_id": "o-1", "amount_cents": True}).encode(), 400),
        ("post", redeem, json.dumps({"user": "alice", "order_id": "o-1", "amount_cents": 500}).encode(), 422),
        ("post", redeem, json.dumps({"user": "mallory", "order_id": "o-1", "amount_cents": 5000}).encode(), 403),
        ("post", "/coupons/0000000000000000/redeem",
         json.dumps({"user": "alice", "order_id": "o-1", "amount_cents": 5000}).encode(), 404),
        ("post", "/coupons/not-a-code/redeem", json.dumps({"user": "alice", "order_id": "o-1", "amount_cents": 5000}).encode(), 404),
        ("post", "/batches", json.dumps({"name": "x", "stock": -5, "rules": HALF_OFF}).encode(), 400),
        ("post", "/batches", json.dumps({"name": "x", "stock": 5, "rules": [{"rule": "nope"}]}).encode(), 400),
        ("post", "/batches", json.dumps({"name": "\ud800", "stock": 5, "rules": HALF_OFF}).encode(), 400),
        ("post", "/batches", json.dumps({"name": "x", "stock": 5, "rules": HALF_OFF, "valid_until": 1}).encode(), 400),
        ("post", f"/batches/{shop.open}/bulk", json.dumps({"users": ["a", 5]}).encode(), 400),
        ("get", "/bulk/12345", None, 404),
    ]
    for method, path, body, status in cases:
        answer = getattr(shop.client, method)(path, data=body, content_type="application/json")
        assert answer.status_code == status, (path, body[:80] if body else body, answer.status_code, answer.get_data()[:300])
        assert answer.json.get("error"), (path, answer.json)
    assert shop.state() == before


# any character, and lone surrogates (which the default leaves out), NUL, newlines and JSON's own
CHARACTERS = st.characters() | st.sampled_from(["\ud800", "\udfff", "\n", "\x00", '"', "\\", "{", "[", "-"])
JSONISH = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(CHARACTERS, max_size=30),
                       lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(CHARACTERS, max_size=10), inner, max_size=4),
                       max_leaves=10)
FIELDS = st.fixed_dictionaries({}, optional={"user": JSONISH, "order_id": JSONISH, "amount_cents": JSONISH,
                                             "first_order": JSONISH, "name": JSONISH, "stock": JSONISH, "rules": JSONISH})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(FIELDS, JSONISH, st.binary(max_size=60).map(lambda raw: raw)),
       where=st.sampled_from(["claim-unknown", "claim-exhausted", "redeem-other", "redeem-small", "create"]))
def test_any_malformed_body_gets_a_4xx_and_changes_nothing(shop, body, where):
    before = shop.state()
    path = {"claim-unknown": "/batches/999/claim", "claim-exhausted": f"/batches/{shop.exhausted}/claim",
            "redeem-other": f"/coupons/{shop.code}/redeem", "redeem-small": f"/coupons/{shop.code}/redeem",
            "create": "/batches"}[where]
    if isinstance(body, bytes):
        data = body
    else:
        if where.startswith("redeem") and isinstance(body, dict):   # an otherwise plausible redemption
            body = {"user": "mallory" if where == "redeem-other" else "alice", "order_id": "o-9", "amount_cents": 10, **body}
            if body.get("user") == "alice" and isinstance(body.get("amount_cents"), int) and body["amount_cents"] >= 1000:
                body["amount_cents"] = 999   # min_spend refuses it
        if where == "create" and isinstance(body, dict):
            body.setdefault("rules", [{"rule": "nope"}])
        data = json.dumps(body).encode("utf-8", "surrogatepass")
    answer = shop.client.post(path, data=data, content_type="application/json")
    assert 400 <= answer.status_code < 500, (path, data[:100], answer.status_code, answer.get_data()[:300])
    assert answer.json["error"]
    assert shop.state() == before
