"""Serial registration (串行): write the user, send the e-mail, then send the SMS, in turn.

At 50 ms a step that is 150 ms a registration: about 7 a second for one worker thread.
Run: python -m demos.message_queues.serial --port 8000
"""
from .app import Services, serve
from .store import NewUser


def register(services: Services, user: NewUser) -> int:
    user_id = services.database.add_user(user)
    services.email.send(user.email, f"email:{user_id}")
    services.sms.send(user.phone, f"sms:{user_id}")
    return user_id


if __name__ == "__main__":
    serve(register, __doc__)
