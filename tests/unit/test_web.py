"""demos/web.py: the service skeleton answers JSON for health, stats and every HTTP error."""
from demos import web


def client(**options):
    app = web.json_app(__name__, **options)

    @app.post("/echo")
    def echo():
        from flask import request
        return {"bytes": len(request.get_data())}

    return app.test_client()


def test_health_and_stats_are_json():
    test = client(stats=lambda: {"published": 3})
    assert test.get("/health").get_json() == {"status": "ok"}
    assert test.get("/stats").get_json() == {"published": 3}


def test_no_stats_route_without_stats():
    answer = client().get("/stats")
    assert answer.status_code == 404 and "error" in answer.get_json()


def test_a_body_over_the_bound_gets_a_json_413_that_names_it():
    test = client(max_body_bytes=100)
    assert test.post("/echo", data=b"x" * 100).get_json() == {"bytes": 100}
    answer = test.post("/echo", data=b"x" * 101)
    assert answer.status_code == 413 and answer.get_json() == {"error": "body larger than 100 bytes"}


def test_unknown_paths_and_methods_are_json_too():
    test = client()
    assert test.get("/nowhere").status_code == 404 and test.get("/nowhere").is_json
    answer = test.get("/echo")
    assert answer.status_code == 405 and answer.is_json
