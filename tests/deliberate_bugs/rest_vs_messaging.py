"""Chapter 5's deliberate bugs: the consumers, the relay and the books run in subprocesses or are
checked by tests named beside them. Each must fail the test named beside it."""
GUARANTEES = "tests/integration/test_rest_vs_messaging_guarantees.py"
BOOKS = "tests/unit/test_rest_vs_messaging_books.py"
INPUT = "tests/unit/test_rest_vs_messaging_input.py"
ORDERING = "tests/unit/test_rest_vs_messaging_ordering.py"

BUGS = [
    dict(name="the e-mail consumer acknowledges a job when it takes it, before sending",
         path="demos/rest_vs_messaging/events.py",
         find="                    pool.submit(lambda: done.put((message, run_handle(handle, body))))",
         replace="                    message.ack()\n                    pool.submit(lambda: run_handle(handle, body))",
         fails=f"{GUARANTEES}::test_nothing_lost_when_the_email_consumer_is_sigkilled[rabbitmq]"),
    dict(name="inventory publishes straight to the broker instead of through the outbox",
         path="demos/rest_vs_messaging/events.py",
         find="        outbox.add(db, TOPIC, {",
         replace="        Publisher(Settings.from_env())(restock_id, TOPIC, {",
         fails=f"{GUARANTEES}::test_nothing_lost_when_the_broker_is_sigkilled_under_restocks[rabbitmq-options0]"),
    dict(name="the books count effective e-mails, not raw attempts (a repeat hides)",
         path="demos/rest_vs_messaging/books.py",
         find='        "repeats": sum(accepted.values()) - len(effective),',
         replace='        "repeats": 0,',
         fails=f"{BOOKS}::test_a_missing_an_orphan_and_a_repeat_are_each_counted"),
    dict(name="a negative quantity is accepted",
         path="demos/rest_vs_messaging/app.py",
         find='json_body.whole(body, "quantity", 1, MAX_QUANTITY)',
         replace='json_body.whole(body, "quantity", -MAX_QUANTITY, MAX_QUANTITY)',
         fails=f"{INPUT}::test_a_bad_restock_is_400_and_makes_nothing"),
    dict(name="the REST notifier keeps going after an e-mail failed and answers 200",
         path="demos/rest_vs_messaging/rest.py",
         find="        raise Unavailable(f\"an e-mail could not be sent: {error or type(error).__name__}\") from error",
         replace="        pass",
         fails=f"{GUARANTEES}::test_rest_with_the_email_service_down_refuses_fast_and_owes_nothing"),
    dict(name="the stock view applies every event it receives (the last arrival wins, not the newest version)",
         path="demos/rest_vs_messaging/view.py",
         find="    stock = CASE WHEN excluded.version > stock_view.version THEN excluded.stock ELSE stock_view.stock END,",
         replace="    stock = excluded.stock,",
         fails=f"{ORDERING}::test_an_older_event_after_a_newer_one_is_skipped_and_a_repeat_is_recorded"),
]
