"""Sending one e-mail over real SMTP to the sink, and remembering which were sent (idempotency).

The key of an e-mail is ``<restock id>:<subscriber id>``: the same in every retry and every
redelivery, so a second delivery of the same job is skipped here, and one that slips through (the
sender killed between the sink's 250 and the record) reaches the sink with the same key.
"""
import smtplib
import time
from email.message import EmailMessage

from ..message_queues.store import Database

SCHEMA = """
CREATE TABLE IF NOT EXISTS email_sent (
    idempotency_key TEXT PRIMARY KEY,
    recipient TEXT NOT NULL,
    sent_at DOUBLE PRECISION NOT NULL
)
"""
SMTP_TIMEOUT_S = 5.0


class MailFailed(RuntimeError):
    """The sink refused (a temporary 451) or did not answer: try again later."""


class Mailer:
    def __init__(self, database: Database, smtp_port: int):
        self.database, self.smtp_port = database, smtp_port

    def already_sent(self, key: str) -> bool:
        with self.database.transaction() as db:
            return db.execute("SELECT 1 FROM email_sent WHERE idempotency_key = ?", (key,)).fetchone() is not None

    def send(self, to: str, key: str, product: str) -> bool:
        """Send unless sent before; True when this call sent it. Raises MailFailed."""
        if self.already_sent(key):
            return False
        message = EmailMessage()
        message["From"], message["To"] = "inventory@example.com", to
        message["Subject"] = f"{product} is back in stock"
        message["X-Idempotency-Key"] = key
        message.set_content(f"Good news: {product} is back in stock.\n")
        try:
            with smtplib.SMTP("127.0.0.1", self.smtp_port, timeout=SMTP_TIMEOUT_S) as smtp:
                smtp.send_message(message)
        except (smtplib.SMTPException, OSError) as error:
            raise MailFailed(f"the mail sink did not take {key}: {str(error).strip() or type(error).__name__}") from error
        with self.database.transaction() as db:
            db.execute("INSERT INTO email_sent (idempotency_key, recipient, sent_at) VALUES (?, ?, ?)"
                       " ON CONFLICT (idempotency_key) DO NOTHING", (key, to, time.time()))
        return True
