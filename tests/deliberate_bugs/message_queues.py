"""Chapter 4's deliberate bugs: the worker, the queued publish and the reconnection run in
subprocesses during the tests, out of mutmut's reach. Each must fail the test named beside it."""
OUTAGE = "tests/integration/test_message_queues_broker_outage.py"
AT_LEAST_ONCE = "tests/integration/test_message_queues_at_least_once.py"
END_TO_END = "tests/integration/test_message_queues_end_to_end.py"

BUGS = [
    dict(name="the worker acknowledges a job when it takes it, before sending",
         path="demos/message_queues/worker.py",
         find="    def handle(job, message):\n",
         replace="    def handle(job, message):\n        message.ack()\n        message.ack = lambda: None\n",
         fails=f"{AT_LEAST_ONCE}::test_worker_killed_mid_job[rabbitmq-before-send]"),
    dict(name="the worker sends without the job's idempotency key",
         path="demos/message_queues/worker.py",
         find='provider.send(job["to"], job["key"])',
         replace='provider.send(job["to"], f"{job[\'key\']}:{time.time()}")',
         fails=f"{AT_LEAST_ONCE}::test_worker_killed_mid_job[rabbitmq-before-ack]"),
    dict(name="the worker exits when the broker goes away instead of reconnecting",
         path="demos/message_queues/worker.py",
         find="            connection = reconnect(settings, stopping)",
         replace="            sys.exit(1)",
         fails=f"{OUTAGE}::test_a_dead_broker_gets_a_fast_503_and_the_worker_reconnects[redis]"),
    dict(name="the worker consumes the default queues, not its QUEUE_PREFIX's",
         path="demos/message_queues/worker.py",
         find="job_queues = list(queues(settings.queue_prefix).values())",
         replace="job_queues = list(queues().values())",
         fails=f"{END_TO_END}::test_concurrent_registrations_each_send_email_and_sms_exactly_once[sqlite-queued]"),
    dict(name="the queued variant publishes after the commit, so a refused publish leaves the user",
         path="demos/message_queues/queued.py",
         find="""    return services.database.add_user(
        user, before_commit=lambda user_id: services.jobs.publish(user_id, user.email, user.phone))""",
         replace="""    user_id = services.database.add_user(user)
    services.jobs.publish(user_id, user.email, user.phone)
    return user_id""",
         fails=f"{OUTAGE}::test_a_dead_broker_gets_a_fast_503_and_the_worker_reconnects[redis]"),
    dict(name="a publish retries with kombu's usual backoff: a dead broker holds each registration seconds",
         path="demos/message_queues/jobs.py",
         find='RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0, "interval_max": 0}',
         replace='RETRY_POLICY = {"max_retries": 3, "interval_start": 1, "interval_step": 1, "interval_max": 1}',
         fails=f"{OUTAGE}::test_a_dead_broker_gets_a_fast_503_and_the_worker_reconnects[redis]"),
    dict(name="kombu's OperationalError (a reconnection that gave up) is not taken for the broker's outage",
         path="demos/message_queues/jobs.py",
         find="+ (OperationalError, OSError)",
         replace="+ ()",
         fails=f"{OUTAGE}::test_a_dead_broker_gets_a_fast_503_and_the_worker_reconnects[rabbitmq]"),
    dict(name="a refused publish is a plain error: 500 instead of 503",
         path="demos/message_queues/jobs.py",
         find="            raise BrokerUnavailable(f\"could not publish",
         replace="            raise RuntimeError(f\"could not publish",
         fails=f"{OUTAGE}::test_a_dead_broker_gets_a_fast_503_and_the_worker_reconnects[redis]"),
    dict(name="the default 5 s connect timeout: a restarting broker holds a registration for seconds",
         path="demos/message_queues/broker.py",
         find="CONNECT_TIMEOUT_S = 1.0",
         replace="CONNECT_TIMEOUT_S = 5.0",
         fails=f"{OUTAGE}::test_a_dead_broker_gets_a_fast_503_and_the_worker_reconnects[rabbitmq]"),
]
