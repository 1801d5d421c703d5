"""What the chapters share about a real broker (``BROKER_URL``): checking that it answers, and
saying what to do when it does not.

    connection = checked(Connection(url), url, "to use the embedded filesystem broker")

raises ``BrokerUnavailable`` with a message such as "Redis not reachable at
redis://127.0.0.1:6379/0 (...): start it with `make servers` (it prints the BROKER_URL to use) or
`redis-server --port 6379`, or unset BROKER_URL to ...". Passwords in the URL are masked.
"""
from urllib.parse import urlsplit

from kombu import Connection
from kombu.utils.url import maybe_sanitize_url

# scheme -> (what it is, how to start one by hand on the URL's port)
SERVERS = {
    "redis": ("Redis", "redis-server --port {port}"),
    "amqp": ("RabbitMQ", "RABBITMQ_NODE_PORT={port} rabbitmq-server"),
}
DEFAULT_PORTS = {"redis": 6379, "amqp": 5672}


class BrokerUnavailable(RuntimeError):
    pass


def start_hint(broker_url: str) -> str:
    """"Redis not reachable at URL: start it with ..." without the reason and the fallback."""
    scheme = broker_url.split(":", 1)[0].split("+", 1)[0]
    if scheme not in SERVERS:
        return f"broker not reachable at {maybe_sanitize_url(broker_url)}: check the URL"
    name, command = SERVERS[scheme]
    port = urlsplit(broker_url).port or DEFAULT_PORTS[scheme]
    return (f"{name} not reachable at {maybe_sanitize_url(broker_url)}: start it with `make servers` "
            f"(it prints the BROKER_URL to use) or `{command.format(port=port)}`")


def checked(connection: Connection, broker_url: str, unset_means: str) -> Connection:
    """``connection``, once it has answered; else BrokerUnavailable saying what to do (within about 1 s).
    ``unset_means`` ends the message: what unsetting BROKER_URL gives instead."""
    try:
        connection.ensure_connection(max_retries=2, interval_start=0.2, interval_step=0.2)
    except Exception as error:
        connection.release()
        raise BrokerUnavailable(f"{start_hint(broker_url)}, or unset BROKER_URL {unset_means} "
                                f"({str(error).strip() or type(error).__name__})") from error
    return connection
