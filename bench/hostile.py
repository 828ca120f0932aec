"""Hostile clients: slow ones held open, and 100 MB bodies, against the default request limits.

1. 200 slow clients (``bench/slowloris.py``: 100 trickle a 100 000-byte body a byte every 3 s
   with a valid key, 100 trickle header lines every 3 s), each re-opened as soon as the gateway
   drops it, held open while 200 sequential ``GET /health/live`` are timed (a new connection
   each, as a load balancer's health check) and while the capacity suite's 128-client,
   1 s-upstream load runs. Then how many slow connections the gateway dropped, with what and
   after how long.
2. ``POST /v1/chat/completions`` with ``Content-Length: 104857600`` and the body streamed as fast
   as the gateway accepts it: time to the 413 status line and the workers' RSS growth, for one
   request and for six at once, without a key and with a valid one.
"""

import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections import Counter

import redis

from bench import big_bodies, slow_load

SLOW_BODY_CLIENTS = 100
SLOW_HEADER_CLIENTS = 100
SLOW_INTERVAL_SECONDS = 3
HEALTH_REQUESTS = 200
LOAD_CLIENTS = 128
LOAD_SECONDS = 15
PARALLEL_BIG_BODIES = 6
TARGET_HEALTH_P99_MS = 50
TARGET_LOAD_PER_SECOND = 115
# The gateway's per-IP block after repeated authentication failures (accounts/security.py BLOCK_KEY).
IP_BLOCK_KEY = "gw:ipblock:127.0.0.1"


def run(env):
    """Both parts; return (results, markdown lines)."""
    user_id, key = slow_load.create_user(env, "bench-hostile@example.com")
    log = slow_load.LogWatch(env.gateway.log_path)
    host, port = "127.0.0.1", env.gateway.port
    results = {}
    results["health_quiet"] = _time_health(env.gateway.url, HEALTH_REQUESTS)
    print(f"  /health/live, nothing else running:   {_health_text(results['health_quiet'])}", flush=True)
    try:
        slow_load.faults(env, latency_ms=slow_load.UPSTREAM_LATENCY_MS)
        access = _AccessLog(env.gateway.log_path)
        with _SlowClients(host, port, key) as slow:
            results["health"] = _time_health(env.gateway.url, HEALTH_REQUESTS)
            print(f"  /health/live, 200 slow clients open: {_health_text(results['health'])}", flush=True)
            slow_load.wait_settled(env.database_url, user_id)
            url = f"{env.gateway.url}/v1/chat/completions"
            results["load"] = slow_load.wrk_level(env, url, LOAD_CLIENTS, LOAD_SECONDS, key, user_id)
            print(f"  128 clients, 1 s upstream:  {slow_load.level_line(results['load'])}", flush=True)
        results["slow"] = slow.summary
        for line in _slow_lines(results["slow"]):
            print(f"  {line}", flush=True)
        time.sleep(1)  # what the gateway makes of the connections closed at the end
        results["slow_answers"] = access.answers(exclude=("GET /health/live 200", "POST /v1/chat/completions 200"))
        print(f"  other gateway answers while they were open and at their close: {results['slow_answers']}", flush=True)
    finally:
        slow_load.faults(env, reset=True)
        results["ip_block"] = _lift_ip_block(env)
    if results["ip_block"]:
        print(f"  WARNING 127.0.0.1 was blocked ({results['ip_block']}); the block is lifted for what follows")
    results["big"] = []
    for token in (None, key):
        for parallel in (1, PARALLEL_BIG_BODIES):
            result = big_bodies.measure(env, host, port, parallel, token)
            results["big"].append(result)
            print(f"  {big_bodies.line(result)}", flush=True)
    results["log"] = log.problems()
    for line in slow_load.log_lines(results["log"]):
        print(f"  {line}", flush=True)
    return results, _markdown(env, results)


class _AccessLog:
    """The gateway's access lines (JSON, message "request") written from now on."""

    def __init__(self, path):
        self.path = path
        self.offset = os.path.getsize(path)

    def answers(self, exclude=()):
        """{"METHOD path status": count}, most frequent first, without ``exclude``."""
        counts = Counter()
        with open(self.path, "rb") as handle:
            handle.seek(self.offset)
            for raw in handle:
                if not raw.startswith(b"{"):
                    continue
                try:
                    record = json.loads(raw)
                except ValueError:
                    continue
                if record.get("message") == "request":
                    counts[f"{record.get('method')} {record.get('path')} {record.get('status')}"] += 1
        return {answer: n for answer, n in counts.most_common() if answer not in exclude}


def _lift_ip_block(env):
    """If the suite got 127.0.0.1 blocked (auth failures), say so and lift it: later suites need it."""
    client = redis.Redis.from_url(env.redis_url)
    try:
        ttl = client.ttl(IP_BLOCK_KEY)
        if ttl is None or ttl < 0:
            return None
        client.delete(IP_BLOCK_KEY, *client.scan_iter(match="*authfail*"))
        return f"for {ttl} s more"
    finally:
        client.close()


def _percentiles(values):
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {"p50": statistics.median(values), "p99": cuts[98], "max": max(values), "count": len(values)}


def _time_health(url, count):
    """p50/p99/max ms of ``count`` sequential GET /health/live, each on a new connection; errors counted."""
    parts = url.split("://", 1)[1].split(":")
    address = (parts[0], int(parts[1]))
    request = f"GET /health/live HTTP/1.1\r\nHost: {address[0]}:{address[1]}\r\nConnection: close\r\n\r\n".encode()
    timings, errors = [], {}
    for _ in range(count):
        started = time.perf_counter()
        try:
            with socket.create_connection(address, timeout=10) as sock:
                sock.sendall(request)
                answer = b""
                while chunk := sock.recv(65536):
                    answer += chunk
            status = answer.split(b" ", 2)[1].decode() if answer.startswith(b"HTTP/") else "garbled"
        except OSError as problem:
            status = type(problem).__name__
        timings.append((time.perf_counter() - started) * 1000)
        if status != "200":
            errors[status] = errors.get(status, 0) + 1
    return {**_percentiles(timings), "errors": errors}


def _health_text(r):
    errors = f", errors {slow_load.errors_text(r['errors'])}" if r["errors"] else ""
    return f"p50 {r['p50']:.1f} ms  p99 {r['p99']:.1f} ms  max {r['max']:.1f} ms ({r['count']} requests{errors})"


class _SlowClients:
    """``bench.slowloris`` in a subprocess from READY to SIGTERM; its summary in ``summary``."""

    def __init__(self, host, port, token):
        args = [sys.executable, "-m", "bench.slowloris", host, str(port), "--body", str(SLOW_BODY_CLIENTS)]
        args += ["--token", token]  # a body this large is read only for a valid key
        args += ["--headers", str(SLOW_HEADER_CLIENTS), "--interval", str(SLOW_INTERVAL_SECONDS)]
        self.args = args
        self.summary = None

    def __enter__(self):
        self.process = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.process.stdout.readline()
        if line.strip() != "READY":
            self._stop()
            raise RuntimeError(f"slowloris did not start: {line}{self.process.stderr.read()}")
        self.started = time.monotonic()
        return self

    def __exit__(self, *exc):
        held = time.monotonic() - self.started
        out, err = self._stop()
        lines = [line for line in out.splitlines() if line.startswith("BENCH_JSON ")]
        if lines:
            self.summary = {**json.loads(lines[0][len("BENCH_JSON ") :]), "held_s": held}
        elif exc[0] is None:
            raise RuntimeError(f"slowloris printed no summary:\n{out}\n{err}")
        return False

    def _stop(self):
        self.process.terminate()
        try:
            return self.process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.communicate()


def _slow_lines(s):
    lines = [
        f"slow clients held {s['held_s']:.0f} s, open at once (0.1 s samples): min {s['open_min']}, mean"
        f" {s['open_mean']:.0f}, max {s['open_max']} (of {SLOW_BODY_CLIENTS + SLOW_HEADER_CLIENTS})"
    ]
    for name in ("body", "headers"):
        k = s[name]
        drops = ", ".join(f"{outcome} {n}" for outcome, n in sorted(k["drops"].items())) or "none"
        line = f"  {name:<7} connections {k['opened']}, dropped: {drops}"
        if k["answer_s"]:
            a = k["answer_s"]
            line += f"; answer after {a['min']:.1f} / {a['p50']:.1f} / {a['max']:.1f} s (min / p50 / max)"
        if k["closed_s"]:
            c = k["closed_s"]
            line += f"; end of stream after {c['min']:.1f} / {c['p50']:.1f} / {c['max']:.1f} s"
        if k["reopen_ms"]:
            r = k["reopen_ms"]
            line += f"; re-opened within {r['p50']:.0f} / {r['max']:.0f} ms (p50 / max)"
        lines.append(line)
    return lines


def _verdict(met):
    return "met" if met else "MISSED"


def _markdown(env, results):
    health, quiet, load, slow = results["health"], results["health_quiet"], results["load"], results["slow"]
    lines = [
        f"Gateway: {env.describe()['gateway']}; defaults MAX_REQUEST_BYTES 4 MiB, CLIENT_BODY_TIMEOUT_SECONDS 15,"
        f" CLIENT_HEADER_TIMEOUT_SECONDS 5. {SLOW_BODY_CLIENTS} clients send headers with a valid key and"
        " `Content-Length: 100000`"
        f" then a body byte every {SLOW_INTERVAL_SECONDS} s, {SLOW_HEADER_CLIENTS} send the request line then a"
        f" header line every {SLOW_INTERVAL_SECONDS} s (`bench/slowloris.py`, gevent); each is re-opened as soon as"
        " the gateway drops it.",
        "",
        "| measurement | result | target |",
        "|---|---|---|",
        f"| `/health/live` p50 / p99 / max, {HEALTH_REQUESTS} sequential, new connection each, nothing else"
        f" | {quiet['p50']:.1f} / {quiet['p99']:.1f} / {quiet['max']:.1f} ms"
        f"{'' if not quiet['errors'] else ', errors ' + slow_load.errors_text(quiet['errors'])} | |",
        f"| the same with the 200 slow clients open | {health['p50']:.1f} / {health['p99']:.1f} / {health['max']:.1f}"
        f" ms{'' if not health['errors'] else ', errors ' + slow_load.errors_text(health['errors'])}"
        f" | p99 < {TARGET_HEALTH_P99_MS} ms: {_verdict(health['p99'] < TARGET_HEALTH_P99_MS and not health['errors'])}"
        " |",
        f"| {LOAD_CLIENTS} clients, 1 s upstream, {LOAD_SECONDS} s, with the slow clients: completions/s (ideal)"
        f" | {load['per_second']:.0f} ({load['ideal']:.0f}), worst second {load['worst_second']}, added p50 / p99"
        f" {load['p50'] - slow_load.UPSTREAM_LATENCY_MS:+.0f} / {load['p99'] - slow_load.UPSTREAM_LATENCY_MS:+.0f} ms,"
        f" errors {slow_load.errors_text(load['errors'])}"
        f" | >= {TARGET_LOAD_PER_SECOND}/s, 0 errors:"
        f" {_verdict(load['per_second'] >= TARGET_LOAD_PER_SECOND and not load['errors'])} |",
        "",
        *[f"- {line.strip()}" for line in _slow_lines(slow)],
        "- Gateway answers other than the load's 200s, while the slow clients were open and as they closed"
        f" (access log): {', '.join(f'{answer} × {n}' for answer, n in results['slow_answers'].items()) or 'none'}.",
        *(
            [f"- 127.0.0.1 was blocked for authentication failures ({results['ip_block']}); lifted afterwards."]
            if results["ip_block"]
            else []
        ),
        "",
        f"100 MB bodies: `Content-Length: {big_bodies.BIG_BODY_BYTES}`, streamed as fast as the gateway takes it;"
        " time from sending the headers to the status line; RSS summed over the gateway's workers, before and 1 s after"
        " (peak sampled every 50 ms).",
        "",
        "| requests | answers | to the 413 p50 / max ms | gateway's FIN after ms | client's send failed after ms"
        " | body sent, MB (most) | RSS growth (peak) MB | targets: < 100 ms, < 10 MB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results["big"]:
        t = r["status_ms"]
        to_413 = f"{t['p50']:.1f} / {t['max']:.1f}" if t else "—"
        fin = "—" if r["fin_ms"] is None else f"{r['fin_ms']:.0f}"
        met = big_bodies.met(r)
        lines.append(
            f"| {big_bodies.label(r)} | {', '.join(f'{s} {n}' for s, n in r['statuses'].items())}"
            f" | {to_413} | {fin}"
            f" | {r['ended_ms']:.0f} ({'/'.join(r['endings'])})"
            f" | {r['body_sent_mb']:.1f} | {r['rss_growth_mb']:+.1f} ({r['rss_peak_growth_mb']:+.1f})"
            f" | {_verdict(met)} |"
        )
    log = results["log"]
    counts = log["counts"] if log else {}
    summary = "; ".join(f"{count} x {key}" for key, count in counts.most_common(5)) if counts else "none"
    lines.append("")
    lines.append(f"- Gateway log warnings and errors during the suite: {summary}.")
    return lines
