"""Capacity under gunicorn's gevent workers: slow clients, oversized bodies, many open streams, the caps."""

import json
import socket
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import psutil
import pytest
import requests

from tests.e2e.gateway_calls import ADMIN, MODEL, complete, create_user

pytestmark = pytest.mark.slow  # load, slow clients and stream limits against real servers

SLOW_CLIENT_TIMEOUTS = {"CLIENT_HEADER_TIMEOUT_SECONDS": "2", "CLIENT_BODY_TIMEOUT_SECONDS": "2"}


def connect(server):
    """A raw TCP connection to the gateway."""
    return socket.create_connection(("127.0.0.1", server.port), timeout=10)


def read_until_closed(sock, deadline_seconds=10):
    """Everything the server sends until it closes the connection."""
    sock.settimeout(deadline_seconds)
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def health_latencies_ms(server, count=40):
    """Wall-clock milliseconds of ``count`` sequential GET /health/live."""
    session, latencies = requests.Session(), []
    for _ in range(count):
        started = time.perf_counter()
        assert session.get(f"{server.url}/health/live", timeout=5).status_code == 200
        latencies.append((time.perf_counter() - started) * 1000)
    return latencies


def worker_rss(server):
    """Resident bytes of each gunicorn worker."""
    return [child.memory_info().rss for child in psutil.Process(server.process.pid).children()]


def test_oversized_body_is_refused_unread_and_the_connection_closed(gateway):
    server = gateway(workers=1, MAX_REQUEST_BYTES="1048576")
    rss_before = sum(worker_rss(server))
    sock = connect(server)
    started = time.perf_counter()
    sock.sendall(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100000000\r\n\r\n" + b"x" * 65536
    )
    answer = read_until_closed(sock)  # the server closes: it does not wait for the other 99.9 MB
    elapsed_ms = (time.perf_counter() - started) * 1000
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), head
    assert json.loads(body)["error"]["code"] == "payload_too_large"
    assert elapsed_ms < 1000
    assert sum(worker_rss(server)) - rss_before < 10 * 1024 * 1024


def test_slow_body_clients_get_408_while_health_stays_fast(gateway):
    server = gateway(workers=1, **SLOW_CLIENT_TIMEOUTS)
    _, _, key = create_user(server.url, "1.00")
    # A body this large is read only for a valid key (a wrong one gets its 401 first, unread).
    head = f"POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {key}\r\n".encode()
    slow = [connect(server) for _ in range(20)]
    for sock in slow:
        sock.sendall(head + b"Content-Length: 100000\r\n\r\n{")
    keyless = connect(server)
    keyless.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nContent-Length: 100000\r\n\r\n{")
    stop = threading.Event()

    def drip():  # one byte per half second: never enough to finish, always enough to look alive
        while not stop.wait(0.5):
            for sock in slow:
                try:
                    sock.send(b" ")
                except OSError:
                    pass

    dripper = threading.Thread(target=drip)
    dripper.start()
    try:
        latencies = health_latencies_ms(server)
        answers = [read_until_closed(sock) for sock in slow]
    finally:
        stop.set()
        dripper.join()
    assert statistics.quantiles(latencies, n=100)[98] < 100, latencies
    assert all(answer.startswith(b"HTTP/1.1 408") for answer in answers), answers[0][:200]
    assert read_until_closed(keyless).startswith(b"HTTP/1.1 401")


def test_slow_header_clients_are_dropped_while_health_stays_fast(gateway):
    server = gateway(workers=1, **SLOW_CLIENT_TIMEOUTS)
    slow = [connect(server) for _ in range(50)]
    for sock in slow:
        sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: gw\r\n")  # the headers never end
    latencies = health_latencies_ms(server)
    started = time.perf_counter()
    leftovers = [read_until_closed(sock) for sock in slow]
    assert statistics.quantiles(latencies, n=100)[98] < 100, latencies
    assert leftovers == [b""] * 50  # closed without an answer, within the header timeout
    assert time.perf_counter() - started < 5


def test_many_open_streams_complete_on_a_small_pool_and_are_charged_once(gateway, upstream, sql):
    server = gateway(workers=1, DB_POOL_MAX="2")
    user_id, headers, _ = create_user(server.url, "100.00", plan="enterprise")
    requests.post(f"{upstream.url}/_control", json={"chunk_delay_ms": 60}, timeout=5).raise_for_status()
    with ThreadPoolExecutor(150) as pool:
        streams = list(pool.map(lambda _: complete(server.url, headers, stream=True), range(150)))
    assert [status for status, _ in streams] == [200] * 150
    assert all(events[-1] == "data: [DONE]" for _, events in streams)
    [totals] = sql("SELECT count(*) AS n, sum(cost) AS cost FROM usage_records WHERE user_id = %s", (user_id,))
    [user] = sql("SELECT credits, reserved_credits FROM users WHERE id = %s", (user_id,))
    assert totals["n"] == 150
    assert user["reserved_credits"] == 0 and user["credits"] == Decimal("100.00") - totals["cost"]


def test_upstream_cap_refuses_past_its_queue_and_gives_holds_back(gateway, upstream, sql):
    server = gateway(workers=1, UPSTREAM_MAX_CONCURRENCY="2", UPSTREAM_QUEUE_SECONDS="0.3")
    user_id, headers, _ = create_user(server.url, "10.00", plan="team")
    requests.post(f"{upstream.url}/_control", json={"latency_ms": 1500}, timeout=5).raise_for_status()
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: complete(server.url, headers), range(4)))
    statuses = sorted(status for status, _ in results)
    assert statuses == [200, 200, 503, 503]
    assert {body["error"]["code"] for status, body in results if status == 503} == {"upstream_busy"}
    [user] = sql("SELECT reserved_credits FROM users WHERE id = %s", (user_id,))
    assert user["reserved_credits"] == 0
    assert sql("SELECT count(*) AS n FROM usage_records WHERE user_id = %s", (user_id,))[0]["n"] == 2
    metrics = requests.get(f"{server.url}/metrics", timeout=5).text
    assert "gateway_upstream_capacity_rejections_total 2.0" in metrics


def test_stream_past_its_maximum_duration_is_cut_and_settled_once(gateway, upstream, sql):
    server = gateway(workers=1, MAX_STREAM_SECONDS="1")
    user_id, headers, _ = create_user(server.url, "10.00", plan="team")
    requests.post(f"{upstream.url}/_control", json={"chunk_delay_ms": 250}, timeout=5).raise_for_status()
    status, events = complete(server.url, headers, stream=True)
    assert status == 200
    errors = [json.loads(event[6:])["error"] for event in events if '"error"' in event]
    assert [error["code"] for error in errors] == ["stream_too_long"]
    rows = sql("SELECT status, model FROM usage_records WHERE user_id = %s", (user_id,))
    assert rows == [{"status": "incomplete", "model": MODEL}]
    assert sql("SELECT reserved_credits FROM users WHERE id = %s", (user_id,))[0]["reserved_credits"] == 0


def test_admin_monitor_reports_pool_exhaustion_field(gateway):
    server = gateway(workers=1)
    database = requests.get(f"{server.url}/admin/monitor", headers=ADMIN, timeout=10).json()["data"]["database"]
    assert database["pool_exhausted_1h"] == 0 and database["pool_max"] == 12


def test_body_cut_short_is_refused_before_authentication_or_upstream(gateway, sql):
    server = gateway(workers=1)
    user_id, _, key = create_user(server.url, "10.00", plan="team")
    body = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}).encode()
    for authorization in ("", f"Authorization: Bearer {key}\r\n"):
        sock = connect(server)
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
            + authorization.encode()
            + f"Content-Length: {len(body) + 5000}\r\n\r\n".encode()
            + body
        )
        sock.shutdown(socket.SHUT_WR)  # the client gives up mid-body
        head, _, answer = read_until_closed(sock).partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 400"), head
        assert json.loads(answer)["error"]["code"] == "incomplete_body"
    assert sql("SELECT count(*) AS n FROM usage_records WHERE user_id = %s", (user_id,))[0]["n"] == 0
    assert sql("SELECT count(*) AS n FROM api_key_audit_logs WHERE action = 'auth_failure'")[0]["n"] == 0
