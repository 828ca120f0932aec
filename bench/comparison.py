"""Side by side in one run: the bare proxy (gthread and gevent), ops-gateway and LiteLLM's proxy.

The same chat-completion load (``overhead.BODY``, wrk) against the same fake OpenRouter, on the
same cores, at 1 and 32 connections: completions/s, the latency each adds to upstream's, and CPU
per request; then the ratios issue 25's targets are set in. Last, where the gateway's own time
goes: the ``Server-Timing`` stages of sequential completions (``ops_gateway/pipeline/stages.py``).
"""

import statistics
import time

import requests

from bench.baseline import bare_proxy
from bench.cpu import CpuMeter
from bench.litellm_proxy import MASTER_KEY, litellm_proxy
from bench.load import run_wrk
from bench.overhead import BODY

CONCURRENCY = (1, 32)
STAGE_SAMPLES = 300
# Issue 25: completions/s at 32 connections, added p50 at 1.
TARGET_RPS_VS_BARE_GEVENT = 0.75
TARGET_RPS_VS_LITELLM = 2.0
TARGET_ADDED_P50_VS_BARE = 1.5
TARGET_ADDED_P50_VS_LITELLM = 0.5


def run(env, duration, concurrency=CONCURRENCY):
    """Load each proxy at each concurrency; return (results by row name, markdown lines)."""
    direct = {
        c: run_wrk(f"{env.upstream.base_url}/chat/completions", c, duration, "POST", BODY, "or-key")
        for c in concurrency
    }
    for result in direct.values():
        print(f"  direct              {result.line()}", flush=True)
    results = {}
    for worker_class in ("gthread", "gevent"):
        with bare_proxy(env, worker_class) as (server, key):
            name = f"bare proxy, {worker_class}"
            results[name] = _load(name, f"{server.url}/v1/chat/completions", key, concurrency, duration, env, server)
    _, key = env.create_user("bench-comparison@example.com")
    name = f"ops-gateway, {env.worker_class}"
    results[name] = _load(name, f"{env.gateway.url}/v1/chat/completions", key, concurrency, duration, env)
    with litellm_proxy(env) as server:
        results["LiteLLM proxy"] = _load(
            "LiteLLM proxy", f"{server.url}/v1/chat/completions", MASTER_KEY, concurrency, duration, env, server
        )
    stages = sample_stages(f"{env.gateway.url}/v1/chat/completions", key)
    return results, _markdown(direct, results, name, stages)


def _load(name, url, key, concurrency, duration, env, server=None):
    """{connections: LoadResult} of one proxy."""
    meter = CpuMeter(env, gateway_pid=server.process.pid if server else None)
    by_connections = {}
    for connections in concurrency:
        result = run_wrk(url, connections, duration, "POST", BODY, key, meter=meter)
        print(f"  {name:<20}{result.line()}", flush=True)
        by_connections[connections] = result
    return by_connections


def sample_stages(url, key, count=STAGE_SAMPLES):
    """{stage: (p50, p95) ms} over ``count`` sequential completions, plus the client's whole time."""
    samples, totals = {}, []
    with requests.Session() as session:
        session.headers.update({"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
        for _ in range(count):
            started = time.perf_counter()
            response = session.post(url, data=BODY, timeout=30)
            totals.append((time.perf_counter() - started) * 1000)
            response.raise_for_status()
            for entry in response.headers["Server-Timing"].split(","):
                stage, _, duration = entry.strip().partition(";dur=")
                samples.setdefault(stage, []).append(float(duration))
    samples["client total"] = totals
    return {stage: _p50_p95(values) for stage, values in samples.items()}


def _p50_p95(values):
    return statistics.median(values), statistics.quantiles(values, n=20, method="inclusive")[18]


def _markdown(direct, results, gateway, stages):
    low, high = min(direct), max(direct)
    lines = [
        f"| | c={low} added p50 ms | c={high} completions/s | c={high} p50 / p99 ms | CPU ms per request at c={high} |",
        "|---|---|---|---|---|",
        f"| upstream alone | — | {direct[high].rps:.0f} | {direct[high].p50:.2f} / {direct[high].p99:.2f} | — |",
    ]
    for name, by_connections in results.items():
        added = by_connections[low].p50 - direct[low].p50
        top = by_connections[high]
        cpu = top.cpu_ms.get("gateway", 0)
        lines.append(f"| {name} | {added:+.2f} | {top.rps:.0f} | {top.p50:.2f} / {top.p99:.2f} | {cpu:.2f} |")
    ours, bare, litellm = results[gateway], results["bare proxy, gevent"], results["LiteLLM proxy"]

    def added(by_connections):
        return by_connections[low].p50 - direct[low].p50

    checks = [
        (
            f"c={high} completions/s vs the bare proxy under gevent",
            ours[high].rps / bare[high].rps,
            ">=",
            TARGET_RPS_VS_BARE_GEVENT,
        ),
        (f"c={high} completions/s vs LiteLLM", ours[high].rps / litellm[high].rps, ">=", TARGET_RPS_VS_LITELLM),
        (
            f"c={low} added p50 vs the bare proxy under gevent",
            added(ours) / max(added(bare), 0.01),
            "<=",
            TARGET_ADDED_P50_VS_BARE,
        ),
        (f"c={low} added p50 vs LiteLLM", added(ours) / max(added(litellm), 0.01), "<=", TARGET_ADDED_P50_VS_LITELLM),
    ]
    lines.append("")
    for label, ratio, sense, target in checks:
        met = ratio >= target if sense == ">=" else ratio <= target
        lines.append(f"- {label}: {ratio:.2f}x (target {sense} {target}x): {'met' if met else 'MISSED'}.")
    lines += ["", f"Where a completion's time goes ({STAGE_SAMPLES} sequential, `Server-Timing`):", ""]
    lines += ["| stage | p50 ms | p95 ms |", "|---|---|---|"]
    lines += [f"| {stage} | {p50:.3f} | {p95:.3f} |" for stage, (p50, p95) in stages.items()]
    return lines
