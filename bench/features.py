"""Issue 27's features priced in one run, at 1 and 32 connections: a completion with tracing off
(the environment's gateway) and on (a second gateway on the same stores exporting every span to
a local OTLP/HTTP collector), and a response-cache hit (a key whose requests are cached)
against that miss."""

import contextlib

import requests

from bench.cpu import CpuMeter
from bench.environment import ADMIN
from bench.load import run_wrk
from bench.overhead import BODY
from devtools.otlp_collector import OtlpCollector
from tests.e2e.servers import start_gateway

CONCURRENCY = (1, 32)


@contextlib.contextmanager
def traced_gateway(env):
    """A gateway like the environment's, exporting its spans to a collector: yields (server, collector)."""
    collector = OtlpCollector(decode=False)
    otel = {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.url, "OTEL_SERVICE_NAME": "bench"}
    server = start_gateway(
        env.instance, env.gateway_settings, env.web_concurrency, env.web_threads, {**env.gateway_env, **otel}
    )
    try:
        requests.post(f"{server.url}/admin/refresh-models", headers=ADMIN, timeout=30).raise_for_status()
        yield server, collector
    finally:
        server.stop()
        collector.stop()


def _cached_key(env, key):
    """A new key of the same user whose every request is cached for a day."""
    body = {"name": "bench-cached", "cache_ttl_seconds": 86400}
    created = requests.post(
        f"{env.gateway.url}/user/api-keys", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=30
    )
    created.raise_for_status()
    return created.json()["api_key"]


def _load(name, url, key, env, duration, concurrency, server=None):
    meter = CpuMeter(env, gateway_pid=server.process.pid if server else None)
    results = {}
    for connections in concurrency:
        results[connections] = run_wrk(url, connections, duration, "POST", BODY, key, meter=meter)
        print(f"  {name:<13}{results[connections].line()}", flush=True)
    return results


def run(env, duration, concurrency=CONCURRENCY):
    """Load the three rows; return (results by row, markdown lines)."""
    _, key = env.create_user("bench-features@example.com")
    path = "/v1/chat/completions"
    rows = {"tracing off": _load("tracing off", env.gateway.url + path, key, env, duration, concurrency)}
    with traced_gateway(env) as (server, collector):
        rows["tracing on"] = _load("tracing on", server.url + path, key, env, duration, concurrency, server)
        exported = f"{collector.exports} OTLP exports, {collector.bytes_received / 1e6:.1f} MB"
    print(f"  collector: {exported}", flush=True)
    rows["cache hit"] = _load("cache hit", env.gateway.url + path, _cached_key(env, key), env, duration, concurrency)
    return rows, _markdown(rows, concurrency, exported)


def _markdown(rows, concurrency, exported):
    lines = [
        "| row | connections | completions/s | p50 / p99 ms | errors | CPU ms/request: gateway / postgres / redis |",
        "|---|---|---|---|---|---|",
    ]
    for name, results in rows.items():
        for connections in concurrency:
            result = results[connections]
            cpu = " / ".join(f"{result.cpu_ms.get(part, 0):.2f}" for part in ("gateway", "postgres", "redis"))
            lines.append(
                f"| {name} | {connections} | {result.rps:.0f} | {result.p50:.2f} / {result.p99:.2f}"
                f" | {result.errors} | {cpu} |"
            )
    off, on, hit = rows["tracing off"], rows["tracing on"], rows["cache hit"]
    low, high = concurrency[0], concurrency[-1]
    lines += [
        "",
        f"Tracing on costs {on[low].p50 - off[low].p50:+.2f} ms p50 at {low} connection(s) and"
        f" {on[high].rps / off[high].rps:.2f}x the completions/s at {high} ({exported} to the collector).",
        f"A cache hit takes {hit[low].p50:.2f} ms p50 against a miss's {off[low].p50:.2f} ms at {low} connection(s),"
        f" {hit[high].rps / off[high].rps:.2f}x the completions/s at {high}.",
    ]
    return lines
