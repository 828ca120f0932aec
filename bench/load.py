"""Load generation with wrk (one thread, N connections) and sequential timing with requests."""

import json
import os
import shutil
import statistics
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

SCRIPT = Path(__file__).resolve().parent / "request.lua"
INSTALL_HINT = "wrk is not installed: apt-get update && apt-get install -y wrk"


class LoadToolMissing(RuntimeError):
    """wrk is not on PATH."""


def require_wrk():
    """The wrk executable; as root on Debian a missing wrk is installed first, else LoadToolMissing."""
    path = shutil.which("wrk")
    if path is None and os.geteuid() == 0 and shutil.which("apt-get"):
        print("bench: wrk is missing; installing the Debian package (apt-get install -y wrk)", flush=True)
        quiet = {"env": {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}, "check": False}
        subprocess.run(["apt-get", "update", "-qq"], **quiet)
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "wrk"], **quiet)
        path = shutil.which("wrk")
    if path is None:
        raise LoadToolMissing(INSTALL_HINT)
    return path


@dataclass
class LoadResult:
    """Throughput and latency percentiles of one wrk run (milliseconds)."""

    connections: int
    requests: int
    rps: float
    p50: float
    p95: float
    p99: float
    errors: int
    cpu_ms: dict = field(default_factory=dict)  # CPU milliseconds per request, by process group

    def line(self):
        """One human-readable line."""
        errors = f"  ERRORS={self.errors}" if self.errors else ""
        cpu = ", ".join(f"{name} {ms:.2f}" for name, ms in self.cpu_ms.items())
        return (
            f"c={self.connections:<3} {self.rps:8.1f} req/s  p50 {self.p50:7.2f} ms  p95 {self.p95:7.2f} ms"
            f"  p99 {self.p99:7.2f} ms  ({self.requests} requests){errors}"
            + (f"\n        CPU ms/request: {cpu}" if cpu else "")
        )


def run_wrk(url, connections, duration, method="GET", body=None, token=None, warmup=2, meter=None):
    """Drive ``url`` with wrk for ``duration`` seconds at ``connections`` (after a short warm-up).

    With a ``bench.cpu.CpuMeter``, the result also carries each process group's CPU per request.
    """
    env = {
        **os.environ,
        "BENCH_METHOD": method,
        "BENCH_BODY": body or "",
        "BENCH_AUTH": token or "",
        "BENCH_LUA_DIR": str(SCRIPT.parent),
    }
    if warmup:
        _wrk(url, connections, warmup, env)
    if meter:
        meter.start()
    summary = _wrk(url, connections, duration, env)
    cpu_ms = meter.stop(summary["requests"]) if meter else {}
    errors = sum(summary[k] for k in ("connect_errors", "read_errors", "write_errors", "non_2xx", "timeouts"))
    return LoadResult(
        connections=connections,
        requests=summary["requests"],
        rps=summary["requests"] / (summary["duration_us"] / 1e6),
        p50=summary["p50_us"] / 1000,
        p95=summary["p95_us"] / 1000,
        p99=summary["p99_us"] / 1000,
        errors=errors,
        cpu_ms=cpu_ms,
    )


def _wrk(url, connections, duration, env):
    """Run wrk once and return the summary its Lua ``done`` hook printed."""
    # One wrk thread: it needs a fraction of a core at these rates, and the cores are shared.
    args = [require_wrk(), "-t1", f"-c{connections}", f"-d{duration}s", "--timeout", "10s", "-s", str(SCRIPT), url]
    completed = subprocess.run(args, env=env, capture_output=True, text=True, check=True)
    for line in completed.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            return json.loads(line[len("BENCH_JSON ") :])
    raise RuntimeError(f"wrk printed no summary:\n{completed.stdout}\n{completed.stderr}")


def time_sequential(url, count=50, headers=None, warmup=3):
    """p50/p95/max (ms) of ``count`` sequential GETs on one keep-alive connection; raises on non-200."""
    with requests.Session() as session:
        session.headers.update(headers or {})
        timings = []
        for index in range(warmup + count):
            started = time.perf_counter()
            response = session.get(url, timeout=60)
            elapsed = (time.perf_counter() - started) * 1000
            if response.status_code != 200:
                raise RuntimeError(f"GET {url} -> {response.status_code}: {response.text[:300]}")
            if index >= warmup:
                timings.append(elapsed)
    cuts = statistics.quantiles(timings, n=100, method="inclusive")
    return {"p50": statistics.median(timings), "p95": cuts[94], "max": max(timings), "count": count}
