"""Requests gunicorn refuses before the app runs still get the JSON error envelope, under both worker classes."""

import json

import pytest

from tests.e2e.servers import exchange

MALFORMED = [
    pytest.param(
        b"GET /health/live?q=" + b"a" * 10_000 + b" HTTP/1.1\r\nHost: gw\r\n\r\n", 414, "uri_too_long", id="long-query"
    ),
    pytest.param(
        b"GET /health/live HTTP/1.1\r\nHost: gw\r\nX-A: a\x01b\r\n\r\n", 400, "bad_request", id="control-char"
    ),
    pytest.param(b"NOT AN HTTP REQUEST LINE\r\n\r\n", 400, "bad_request", id="garbage-request-line"),
    pytest.param(b"GET /health/live HTTP/9.9\r\nHost: gw\r\n\r\n", 400, "bad_request", id="bad-http-version"),
    pytest.param(
        b"GET /health/live HTTP/1.1\r\nHost: gw\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(200)) + b"\r\n",
        431,
        "request_header_fields_too_large",
        id="too-many-headers",
    ),
]


@pytest.fixture(scope="module", params=["gevent", "gthread"])
def worker_class(request):
    """Each test runs under both ``WEB_WORKER_CLASS`` values."""
    return request.param


@pytest.mark.parametrize(("raw", "status", "code"), MALFORMED)
def test_malformed_request_gets_the_json_envelope_and_a_closed_connection(gateway, worker_class, raw, status, code):
    server = gateway(workers=1, WEB_WORKER_CLASS=worker_class)
    got_status, headers, body, _ = exchange(server, raw)
    assert got_status == status, body
    assert headers["content-type"] == "application/json"
    assert headers["connection"] == "close"
    assert int(headers["content-length"]) == len(body)
    error = json.loads(body)["error"]
    assert error["code"] == code
    assert error["status"] == status
    assert error["message"].endswith(".")
