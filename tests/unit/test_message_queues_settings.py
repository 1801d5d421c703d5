"""Chapter 4's settings from the environment, and the switch that turns a missing server into a failure."""
import pytest

from demos.message_queues.broker import queues
from demos.message_queues.settings import Settings
from load.servers import required


def test_the_defaults_are_embedded_and_the_queues_are_named_registration(monkeypatch, tmp_path):
    for variable in ("DATABASE_URL", "BROKER_URL", "REDIS_URL", "QUEUE_PREFIX", "STEP_MS", "EMAIL_MS"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    settings = Settings.from_env()
    assert settings.database_url == f"sqlite:///{tmp_path}/registrations.db"
    assert settings.broker_url == f"filesystem://{tmp_path}/broker"
    assert (settings.db_write_s, settings.email_s, settings.sms_s) == (0.05, 0.05, 0.05)
    assert settings.queue_prefix == "registration"
    assert [queue.name for queue in queues(settings.queue_prefix).values()] == ["registration.email",
                                                                                 "registration.sms"]


def test_each_setting_is_one_variable_away(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://demo@127.0.0.1:5432/registrations")
    monkeypatch.setenv("BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
    monkeypatch.setenv("QUEUE_PREFIX", "shop")
    monkeypatch.setenv("STEP_MS", "10")
    monkeypatch.setenv("SMS_MS", "80")
    monkeypatch.setenv("BROKER_VISIBILITY_TIMEOUT", "5")
    settings = Settings.from_env()
    assert settings.database_url.startswith("postgresql://") and settings.broker_url.startswith("amqp://")
    assert (settings.db_write_s, settings.email_s, settings.sms_s) == (0.01, 0.01, 0.08)
    assert settings.visibility_timeout_s == 5 and settings.queue_prefix == "shop"
    assert queues("shop")["sms"].routing_key == "shop.sms" and queues("shop")["sms"].durable


@pytest.mark.parametrize("value,expected", [("1", True), ("true", True), ("TRUE", True), ("Yes", True),
                                            (" yes ", True), ("", False), ("0", False), ("no", False),
                                            ("false", False)])
def test_require_servers_accepts_1_true_and_yes(monkeypatch, value, expected):
    monkeypatch.setenv("REQUIRE_SERVERS", value)
    assert required() is expected


def test_require_servers_unset_means_skip(monkeypatch):
    monkeypatch.delenv("REQUIRE_SERVERS", raising=False)
    assert required() is False
