"""Registrations against the chapter 4 service: each user registers new, unique users.

Closed loop by default; ``--arrival-rate R`` for open-loop arrivals (see load/recorder.py).
By hand, with a variant running on port 8000:
    locust -f load/message_queues/locustfile.py --host http://127.0.0.1:8000
"""
import uuid

from locust import FastHttpUser, task

from load.recorder import Paced


class Registration(Paced, FastHttpUser):
    @task
    def register(self):
        name = uuid.uuid4().hex[:16]
        self.client.post("/register", json={"email": f"{name}@example.com", "phone": "+15551234567"},
                         name="/register")
