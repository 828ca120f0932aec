"""Chunked request bodies against real gunicorn (both worker classes), over raw sockets: broken
framing is a 400 in the envelope, never a 500, and a wrong key is answered without waiting for
the body at all."""

import json

import pytest

from tests.conftest import ADMIN_API_KEY
from tests.e2e.gateway_calls import MODEL, create_user
from tests.e2e.servers import exchange

CHAT = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}).encode()


@pytest.fixture(scope="module", params=["gevent", "gthread"])
def worker_class(request):
    """Each test runs under both ``WEB_WORKER_CLASS`` values."""
    return request.param


def chunked_request(path, chunks, authorization=None, content_type="application/json"):
    """The request line and headers of a chunked POST, then ``chunks`` (raw bytes) as they are."""
    head = [f"POST {path} HTTP/1.1", "Host: gw", f"Content-Type: {content_type}", "Transfer-Encoding: chunked"]
    if authorization:
        head.append(f"Authorization: Bearer {authorization}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + chunks


def chunk(data):
    return b"%x\r\n%s\r\n" % (len(data), data)


def test_broken_chunked_framing_is_a_400_envelope_never_a_500(gateway, worker_class):
    server = gateway(workers=1, WEB_WORKER_CLASS=worker_class)
    _, _, key = create_user(server.url, "1.00")
    # (chunks, the client ends its side after them, the code); the server closes each connection
    # itself: where a next request would start is unknown.
    broken = {
        "bad hex size": (b"zz\r\n" + CHAT + b"\r\n0\r\n\r\n", False, "malformed_body"),
        "chunk shorter than its size, then the last chunk": (b"5\r\nabc\r\n0\r\n\r\n", False, "malformed_body"),
        "chunk without its CRLF": (b"3\r\nabcXY0\r\n\r\n", False, "malformed_body"),
        "ends inside a chunk": (b"40\r\n" + CHAT[:20], True, "incomplete_body"),
        "ends before the last chunk": (chunk(CHAT), True, "incomplete_body"),
    }
    for path in ("/v1/chat/completions", "/user/api-keys", "/admin/users"):
        token = ADMIN_API_KEY if path.startswith("/admin") else key
        for name, (chunks, finish_sending, code) in broken.items():
            status, headers, body, _ = exchange(server, chunked_request(path, chunks, token), finish_sending)
            assert status == 400, (path, name, body)
            assert headers["content-type"] == "application/json"
            error = json.loads(body)["error"]
            assert (error["code"], error["status"]) == (code, 400), (path, name)
    served = chunked_request("/v1/chat/completions", chunk(CHAT) + b"0\r\n\r\n", key)
    status, _, _, _ = exchange(server, served, finish_sending=True)
    assert status == 200  # a well-formed chunked body is served
    assert "Traceback" not in server.log_text()


def test_a_wrong_key_is_answered_before_a_chunked_body_arrives(gateway, worker_class, sql):
    server = gateway(workers=1, WEB_WORKER_CLASS=worker_class)
    # The body's first chunk and nothing more: reading it would wait CLIENT_BODY_TIMEOUT_SECONDS (15).
    raw = chunked_request("/v1/chat/completions", b"400000\r\n" + b"x" * 65536, "gw_live_" + "w" * 43)
    status, _, body, seconds = exchange(server, raw)
    assert status == 401, body
    assert json.loads(body)["error"]["code"] == "invalid_api_key"
    assert seconds < 5  # answered and closed (after a 1 s linger) without the rest of the body
    assert sql("SELECT count(*) AS n FROM api_key_audit_logs WHERE action = 'auth_failure'")[0]["n"] == 1
    malformed = chunked_request("/health/live", b"zz\r\n", content_type="text/plain")
    assert exchange(server, malformed)[0] == 405  # no route reads it, so it is never parsed
    assert "Traceback" not in server.log_text()
