"""Cheap refusals: a 4 MB body behind a wrong key or from a blocked address, against real gunicorn.

1. ``REQUESTS`` sequential ``POST /v1/chat/completions`` with a wrong key and a body just under
   ``MAX_REQUEST_BYTES`` (4 MB of content-less messages, which cost seconds of CPU to parse and
   validate), each on a new connection, the body streamed as fast as the gateway takes it: time
   from the end of the headers to the 401 status line, and the workers' CPU per refusal
   (user + system, from /proc, over the whole series). The brute-force block is lifted every
   ``LIFT_EVERY`` requests so every one is a 401, as from a fresh address. The same with an
   empty body (``{}``) is the reference: what a 401 costs anyway (its audit row and failure count).
2. The same with a valid key from a blocked address (``gw:ipblock:127.0.0.1`` set in Redis): 429.
3. ``GET /health/live`` timed while ``ATTACKERS`` clients send such 401 requests back to back.

Target: every refusal's status line within 5 ms at p99, its CPU what an empty body's costs.
"""

import json
import select
import socket
import statistics
import threading
import time

import psutil
import redis

from bench import hostile

REQUESTS = 500
LIFT_EVERY = 10
ATTACKERS = 4
HEALTH_REQUESTS = 200
TARGET_P99_MS = 5
WRONG_KEY = "gw_live_" + "w" * 43
# Just under the 4 MiB MAX_REQUEST_BYTES default, so the 413 does not answer first.
BODY = json.dumps({"model": "openai/gpt-4o-mini", "messages": [{"role": "user"}] * 232_000}).encode()
EMPTY = b"{}"


def run(env):
    """The three measurements; return (results, markdown lines)."""
    _, key = env.create_user("bench-refusals@example.com")
    host, port = "127.0.0.1", env.gateway.port
    cache = redis.Redis.from_url(env.redis_url)
    results = {"body_bytes": len(BODY)}
    try:
        results["wrong_key_empty"] = _series(env, host, port, WRONG_KEY, EMPTY, lift=cache)
        print(f"  wrong key, empty body:       {_text(results['wrong_key_empty'])}", flush=True)
        results["wrong_key"] = _series(env, host, port, WRONG_KEY, BODY, lift=cache)
        print(f"  wrong key, 4 MB body:        {_text(results['wrong_key'])}", flush=True)
        cache.set(hostile.IP_BLOCK_KEY, 1, ex=600)
        results["blocked_ip"] = _series(env, host, port, key, BODY)
        print(f"  blocked IP, valid key, 4 MB: {_text(results['blocked_ip'])}", flush=True)
        _lift(cache)
        results["health"] = _health_under_attack(env, host, port, cache)
        print(f"  /health/live under attack:   {_health_text(results['health'])}", flush=True)
    finally:
        _lift(cache)
        cache.close()
    return results, _markdown(results)


def _lift(cache):
    """Lift 127.0.0.1's block and empty its failure window."""
    cache.delete(hostile.IP_BLOCK_KEY, *cache.scan_iter(match="*authfail*"))


def _worker_cpu_seconds(env):
    """User + system CPU seconds of the gateway's workers so far."""
    total = 0.0
    for worker in psutil.Process(env.gateway.process.pid).children():
        try:
            times = worker.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def _refused(host, port, token, body=BODY):
    """One POST with ``body`` streamed; (status, ms from the end of the headers to the status line)."""
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {token}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(head)
        started = time.perf_counter()
        sock.setblocking(False)
        pending, answer = memoryview(body), b""
        deadline = time.monotonic() + 10
        while b"\r\n" not in answer and time.monotonic() < deadline:
            readable, writable, _ = select.select([sock], [sock] if pending else [], [], 0.5)
            if readable:
                data = sock.recv(65536)
                if not data:
                    break
                answer += data
            elif writable:
                try:
                    pending = pending[sock.send(pending[:65536]) :]
                except (BlockingIOError, BrokenPipeError, ConnectionResetError):
                    pass
        elapsed_ms = (time.perf_counter() - started) * 1000
    status_line = answer.split(b"\r\n", 1)[0].decode("latin-1")
    return (status_line.split(" ")[1] if status_line.startswith("HTTP/") else "none"), elapsed_ms


def _series(env, host, port, token, body, lift=None):
    """``REQUESTS`` refusals one after another (127.0.0.1's block lifted every ``LIFT_EVERY`` in
    Redis ``lift``); percentiles, statuses and worker CPU per request."""
    time.sleep(0.5)
    cpu_before = _worker_cpu_seconds(env)
    timings, statuses = [], {}
    for i in range(REQUESTS):
        if lift is not None and i % LIFT_EVERY == 0:
            _lift(lift)
        status, ms = _refused(host, port, token, body)
        statuses[status] = statuses.get(status, 0) + 1
        timings.append(ms)
    time.sleep(1.2)  # each refused connection's 1 s linger ends
    cpu_ms = (_worker_cpu_seconds(env) - cpu_before) * 1000 / REQUESTS
    cuts = statistics.quantiles(timings, n=100, method="inclusive")
    return {
        "p50": statistics.median(timings),
        "p99": cuts[98],
        "max": max(timings),
        "statuses": statuses,
        "cpu_ms": cpu_ms,
    }


def _health_under_attack(env, host, port, cache):
    """/health/live percentiles while ``ATTACKERS`` threads send wrong-key 4 MB requests nonstop."""
    stop, sent = threading.Event(), [0]

    def attack():
        while not stop.is_set():
            _refused(host, port, WRONG_KEY)
            sent[0] += 1
            if sent[0] % LIFT_EVERY == 0:
                _lift(cache)

    attackers = [threading.Thread(target=attack) for _ in range(ATTACKERS)]
    for thread in attackers:
        thread.start()
    try:
        time.sleep(0.5)
        health = hostile._time_health(env.gateway.url, HEALTH_REQUESTS)
    finally:
        stop.set()
        for thread in attackers:
            thread.join()
    return {**health, "attack_requests": sent[0]}


def _text(r):
    return (
        f"p50 {r['p50']:.2f} ms  p99 {r['p99']:.2f} ms  max {r['max']:.2f} ms  statuses {r['statuses']}"
        f"  worker CPU {r['cpu_ms']:.2f} ms per request"
    )


def _health_text(r):
    errors = f", errors {r['errors']}" if r["errors"] else ""
    return (
        f"p50 {r['p50']:.1f} ms  p99 {r['p99']:.1f} ms  max {r['max']:.1f} ms ({r['count']} requests, "
        f"{r['attack_requests']} attack requests meanwhile{errors})"
    )


def _markdown(results):
    health = results["health"]
    lines = [
        f"`POST /v1/chat/completions` with a {results['body_bytes']:,}-byte body (content-less messages) or"
        " `{}`, each on a new connection, the body streamed as fast as the gateway takes it; time from the end of"
        f" the headers to the status line; worker CPU (user + system) over the {REQUESTS} requests of each row,"
        " lingering included.",
        "",
        "| refusal | answers | p50 / p99 / max ms | worker CPU per request | target: p99 < 5 ms |",
        "|---|---|---|---|---|",
    ]
    rows = (
        ("wrong key, `{}` body (the reference)", results["wrong_key_empty"], None),
        ("wrong key, 4 MB body", results["wrong_key"], TARGET_P99_MS),
        ("blocked IP, valid key, 4 MB body", results["blocked_ip"], TARGET_P99_MS),
    )
    for label, r, target in rows:
        verdict = "—" if target is None else "met" if r["p99"] < target else "MISSED"
        lines.append(
            f"| {label} | {', '.join(f'{s} × {n}' for s, n in r['statuses'].items())}"
            f" | {r['p50']:.2f} / {r['p99']:.2f} / {r['max']:.2f} | {r['cpu_ms']:.2f} ms | {verdict} |"
        )
    lines += [
        "",
        f"- `/health/live` ({HEALTH_REQUESTS} sequential, new connection each) while {ATTACKERS} clients sent"
        f" {health['attack_requests']} such wrong-key requests back to back: p50 / p99 / max"
        f" {health['p50']:.1f} / {health['p99']:.1f} / {health['max']:.1f} ms"
        f"{'' if not health['errors'] else ', errors ' + str(health['errors'])}.",
    ]
    return lines
