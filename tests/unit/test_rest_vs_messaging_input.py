"""Bad input to chapter 5's services: a clear 4xx with a JSON reason, and nothing half-made (no
restock, no event, no e-mail, no subscription)."""
import pytest

from demos.message_queues.store import Database
from demos.rest_vs_messaging import app as shared
from demos.rest_vs_messaging.mail import SCHEMA as MAIL_SCHEMA, Mailer

BAD_BODIES = [b"{", b"[1, 2]", b'"text"', b"[" * 100 + b"]" * 100, b'{"quantity": "\\ud800"}', b"\xff\xfe"]


@pytest.fixture
def inventory(tmp_path):
    inventory = shared.Inventory(Database(f"sqlite:///{tmp_path}/inventory.db", schema=shared.INVENTORY_SCHEMA))
    inventory.add_product("p1")
    announced = []

    def restock(inv, restock_id, product, quantity):
        announced.append(restock_id)
        with inv.database.transaction() as db:
            return inv.apply(db, restock_id, product, quantity)
    client = shared.create_inventory(restock, inventory, "test").test_client()
    client.announced = announced
    client.made = lambda: inventory.database.transaction().__enter__().execute(
        "SELECT COUNT(*) FROM inventory_restocks").fetchone()[0]
    return client


@pytest.mark.parametrize("body", BAD_BODIES + [b'{"quantity": -1}', b'{"quantity": 0}', b'{"quantity": 1.5}',
                                               b'{"quantity": true}', b'{"quantity": "5"}', b'{}',
                                               b'{"quantity": 1000001}'])
def test_a_bad_restock_is_400_and_makes_nothing(inventory, body):
    response = inventory.post("/products/p1/stock", data=body)
    assert response.status_code == 400 and "error" in response.get_json()
    assert inventory.announced == [] and inventory.made() == 0


@pytest.mark.parametrize("product", ["p2", "P1", "p1%0A", "x" * 60, "%E2%80%8B"])
def test_an_unknown_product_is_404_and_makes_nothing(inventory, product):
    response = inventory.post(f"/products/{product}/stock", json={"quantity": 1})
    assert response.status_code == 404 and "error" in response.get_json()
    assert inventory.announced == [] and inventory.made() == 0


def test_a_good_restock_is_made_once(inventory):
    response = inventory.post("/products/p1/stock", json={"quantity": 3})
    assert response.status_code == 201 and response.get_json()["stock"] == 3
    assert len(inventory.announced) == 1 and inventory.made() == 1


def test_a_wiring_that_cannot_announce_is_503_and_makes_nothing(tmp_path):
    inventory = shared.Inventory(Database(f"sqlite:///{tmp_path}/inventory.db", schema=shared.INVENTORY_SCHEMA))
    inventory.add_product("p1")

    def refuse(*args):
        raise shared.Unavailable("the notifier did not answer")
    response = shared.create_inventory(refuse, inventory, "rest").test_client().post("/products/p1/stock", json={"quantity": 1})
    assert response.status_code == 503 and "notifier" in response.get_json()["error"]
    with inventory.database.transaction() as db:
        assert db.execute("SELECT COUNT(*) FROM inventory_restocks").fetchone()[0] == 0


@pytest.fixture
def subscribers(tmp_path):
    database = Database(f"sqlite:///{tmp_path}/subscribers.db", schema=shared.SUBSCRIBERS_SCHEMA)
    client = shared.create_subscribers(database).test_client()
    client.count = lambda: len(client.get("/products/p1/subscribers").get_json()["subscribers"])
    return client


@pytest.mark.parametrize("email", ["", "no-at-sign", "a@b", "a b@example.com", "a@example.com\n", "a\u0000@example.com",
                                   "x" * 250 + "@example.com", 5, None, ["a@example.com"]])
def test_a_malformed_email_is_400_and_subscribes_nobody(subscribers, email):
    response = subscribers.post("/subscriptions", json={"product": "p1", "email": email})
    assert response.status_code == 400 and "email" in response.get_json()["error"]
    assert subscribers.count() == 0


@pytest.mark.parametrize("body", BAD_BODIES)
def test_a_malformed_subscription_body_is_400(subscribers, body):
    assert subscribers.post("/subscriptions", data=body).status_code == 400
    assert subscribers.count() == 0


@pytest.mark.parametrize("number", ["999", "abc", "-1", "1" * 20, "١"])
def test_an_unknown_subscriber_is_404(subscribers, number):
    subscribers.post("/subscriptions", json={"product": "p1", "email": "a@example.com"})
    for response in (subscribers.get(f"/subscriptions/{number}"), subscribers.delete(f"/subscriptions/{number}")):
        assert response.status_code == 404 and "error" in response.get_json()
    assert subscribers.count() == 1


def test_a_subscription_is_made_once_and_can_be_removed(subscribers):
    first = subscribers.post("/subscriptions", json={"product": "p1", "email": "A@example.com"}).get_json()
    again = subscribers.post("/subscriptions", json={"product": "p1", "email": "a@example.com"}).get_json()
    assert first["id"] == again["id"] and subscribers.count() == 1
    assert subscribers.delete(f"/subscriptions/{first['id']}").status_code == 200 and subscribers.count() == 0


@pytest.mark.parametrize("body", [{"to": "bad", "key": "11111111-1111-1111-1111-111111111111:1", "product": "p1"},
                                  {"to": "a@example.com", "key": "not-a-key", "product": "p1"},
                                  {"to": "a@example.com", "key": "11111111-1111-1111-1111-111111111111:1\n", "product": "p1"},
                                  {"to": "a@example.com", "key": "11111111-1111-1111-1111-111111111111:1"}])
def test_a_bad_send_is_400_and_sends_nothing(tmp_path, body):
    mailer = Mailer(Database(f"sqlite:///{tmp_path}/email.db", schema=MAIL_SCHEMA), smtp_port=1)   # no sink at all
    response = shared.create_email_service(mailer).test_client().post("/send", json=body)
    assert response.status_code == 400 and "error" in response.get_json()


def test_a_send_the_sink_does_not_take_is_502(tmp_path):
    mailer = Mailer(Database(f"sqlite:///{tmp_path}/email.db", schema=MAIL_SCHEMA), smtp_port=1)
    response = shared.create_email_service(mailer).test_client().post(
        "/send", json={"to": "a@example.com", "key": "11111111-1111-1111-1111-111111111111:1", "product": "p1"})
    assert response.status_code == 502
    assert not mailer.already_sent("11111111-1111-1111-1111-111111111111:1")
