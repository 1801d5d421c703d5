"""Queued registration (消息队列): write the user, publish the e-mail and SMS jobs, answer.

At 50 ms a step that is about 50 ms a registration: about 20 a second for one worker thread.
A separate worker (``python -m demos.message_queues.worker``) sends them later.
The jobs are published inside the user's transaction: if the broker refuses them the user is
rolled back, so no user is left without their welcome jobs.
Run: python -m demos.message_queues.queued --port 8000
"""
from .app import Services, serve
from .store import NewUser


def register(services: Services, user: NewUser) -> int:
    return services.database.add_user(
        user, before_commit=lambda user_id: services.jobs.publish(user_id, user.email, user.phone))


if __name__ == "__main__":
    serve(register, __doc__, with_jobs=True)
