"""Command line of the HTTP services, one process each:

    python -m demos.rest_vs_messaging.service subscribers --port 8001
    python -m demos.rest_vs_messaging.service email --port 8003            # needs the sink (SMTP_PORT)
    python -m demos.rest_vs_messaging.service notifier --port 8002 [--concurrency 8]   # REST wiring
    python -m demos.rest_vs_messaging.service orchestrator --port 8004                 # pipeline wiring
    python -m demos.rest_vs_messaging.service inventory --wiring rest|rest-concurrent|pipeline|events --port 8000

The other services' addresses come from the environment (demos/rest_vs_messaging/settings.py).
"""
import argparse
import sys

from ..message_queues.store import Database
from . import app as shared
from .mail import SCHEMA as MAIL_SCHEMA, Mailer
from .settings import Settings

WIRINGS = ("rest", "rest-concurrent", "pipeline", "events")


def main() -> None:
    parser = argparse.ArgumentParser(description="One of chapter 5's services.")
    parser.add_argument("role", choices=("inventory", "subscribers", "email", "notifier", "orchestrator"))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--wiring", choices=WIRINGS, default="events", help="inventory: how a restock is announced")
    parser.add_argument("--concurrency", type=int, default=1, help="notifier: e-mails sent at a time")
    args = parser.parse_args()
    settings = Settings.from_env()
    if args.role == "inventory":
        inventory = shared.Inventory(Database(settings.database("inventory"), schema=shared.INVENTORY_SCHEMA))
        if args.wiring == "events":
            from .. import outbox
            from .events import restock_with_outbox, start_relay
            with inventory.database.transaction() as db:
                outbox.create_table(db, inventory.database.dialect.id)
            restock = restock_with_outbox
            start_relay(inventory.database, settings)
        elif args.wiring == "pipeline":
            from .rest import restock_via
            restock = restock_via(f"{settings.orchestrator_url}/flows", "the orchestrator")
        else:
            from .rest import restock_via
            restock = restock_via(f"{settings.notifier_url}/notify", "the notifier")
        app = shared.create_inventory(restock, inventory, args.wiring)
    elif args.role == "subscribers":
        app = shared.create_subscribers(Database(settings.database("subscribers"), schema=shared.SUBSCRIBERS_SCHEMA))
    elif args.role == "email":
        app = shared.create_email_service(Mailer(Database(settings.database("email"), schema=MAIL_SCHEMA),
                                                 settings.smtp_port))
    elif args.role == "notifier":
        from .rest import create_notifier
        app = create_notifier(settings.subscribers_url, settings.email_url, args.concurrency)
    else:
        from .pipeline import create_orchestrator
        app = create_orchestrator(settings.subscribers_url, settings.email_url)
    if args.threads < 1:
        sys.exit("--threads must be at least 1")
    shared.serve(app, args.port, args.threads, f"{args.role} ({args.wiring})" if args.role == "inventory" else args.role)


if __name__ == "__main__":
    main()
