"""Each variant, as real processes, on each database: a registration sends its e-mail and SMS exactly once."""
import json
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest


def register(url: str, n: int) -> int:
    body = json.dumps({"email": f"user{n}@example.com", "phone": "+15551234567"}).encode()
    request = urllib.request.Request(f"{url}/register", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status


@pytest.mark.parametrize("variant", ["serial", "parallel", "queued"])
def test_concurrent_registrations_each_send_email_and_sms_exactly_once(registration, variant,
                                                                    registration_database_url):
    running = registration(variant, database_url=registration_database_url)
    if variant == "queued":
        running.start_worker()
    running.start(threads=4)
    with ThreadPoolExecutor(max_workers=8) as pool:
        assert list(pool.map(lambda n: register(running.url, n), range(20))) == [201] * 20
    expected = {"users": 20, "attempts": {"email": 20, "sms": 20}, "sends": {"email": 20, "sms": 20}}
    running.wait_for(lambda: running.audit() == expected, 15, "20 e-mails and 20 SMS")
    running.holds(lambda: running.audit() == expected, 1.0, f"the audit stays {expected}")   # no late duplicate
    assert running.database.audit() == expected   # and it is all in the database the test asked for
