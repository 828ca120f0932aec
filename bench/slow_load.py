"""Closed-loop load on a slow upstream, shared by the capacity and hostile-client suites.

The bench plan (no limit trips), the fake's fault switches, wrk runs that count every status and
the completions of each second, peak RSS per worker, waiting for the books to settle, and the
gateway log's warnings; plus the one-line texts the suites print.
"""

import json
import os
import resource
import subprocess
import threading
import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import psutil
import psycopg2
import requests

from bench.cpu import CpuMeter
from bench.load import require_wrk

UPSTREAM_LATENCY_MS = 1000
WARMUP_SECONDS = 3
WRK_TIMEOUT_SECONDS = 30
SCRIPT = Path(__file__).resolve().parent / "capacity.lua"
MESSAGES = [{"role": "user", "content": "Say hello in five words."}]
BODY = json.dumps({"model": "openai/gpt-4o-mini", "messages": MESSAGES, "max_tokens": 16})
# No plan admits 2000 concurrent requests (enterprise: 256) and /admin/limit sets only the six
# windows, so the bench database gets a plan of its own that caps nothing.
PLAN = "bench-capacity"
_PLAN_SQL = (
    "INSERT INTO plans (name, description, requests_per_minute, requests_per_hour, requests_per_day,"
    " tokens_per_minute, tokens_per_hour, tokens_per_day, daily_request_quota, monthly_request_quota,"
    " daily_token_quota, monthly_token_quota, max_concurrent_requests)"
    " VALUES (%s, 'capacity benchmark: no limit trips', 1000000000, 1000000000, 1000000000, 1000000000000,"
    " 1000000000000, 1000000000000, 1000000000, 1000000000, 1000000000000, 1000000000000, 1000000)"
    " ON CONFLICT (name) DO NOTHING"
)


def create_user(env, email):
    """A bench user on the no-limits plan (made first; ``/admin/limit`` cannot lift concurrency)."""
    with cursor(env.database_url) as cur:
        cur.execute(_PLAN_SQL, (PLAN,))
    return env.create_user(email, plan=PLAN)


@contextmanager
def cursor(database_url):
    """A cursor on an autocommit connection, closed afterwards."""
    conn = psycopg2.connect(database_url)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            yield cur
    finally:
        conn.close()


def check_open_files(connections):
    """Each connection is a descriptor in wrk and two in the gateway (client, upstream): say if too few."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2 * connections + 1000:
        print(f"  WARNING: RLIMIT_NOFILE is {soft}; {connections} connections need more", flush=True)


def faults(env, reset=False, **switches):
    """Set the fake's fault switches (every process sees them within RECHECK_SECONDS)."""
    url = f"{env.upstream.url}/_control" + ("/reset" if reset else "")
    requests.post(url, json=None if reset else switches, timeout=10).raise_for_status()
    time.sleep(0.5)


def wait_settled(database_url, user_id, timeout=60):
    """Wait until the requests a load tool abandoned have finished: nothing on hold for the user and
    no new usage row for a second (a request still queued in the gateway holds nothing yet)."""
    deadline = time.monotonic() + timeout
    previous = None
    with cursor(database_url) as cur:
        while time.monotonic() < deadline:
            cur.execute(
                "SELECT reserved_credits, (SELECT count(*) FROM usage_records WHERE user_id = %(u)s)"
                " FROM users WHERE id = %(u)s",
                {"u": user_id},
            )
            reserved, rows = cur.fetchone()
            if reserved == 0 and rows == previous:
                return
            previous = rows
            time.sleep(1)


class Peaks:
    """Samples resident memory while a load runs: peak per gateway worker (or per worker of the proxy
    at ``server_pid``), peak of the fake's processes."""

    def __init__(self, env, interval=0.2, server_pid=None):
        self.env = env
        self.server_pid = server_pid or env.gateway.process.pid
        self.interval = interval
        self.workers = {}  # pid -> peak RSS bytes
        self.upstream = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self):
        self._before = {p.pid for p in psutil.Process(self.server_pid).children()}
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        after = {p.pid for p in psutil.Process(self.server_pid).children()}
        self.replaced = len(self._before - after)  # workers that died (crash, timeout) during the load
        return False

    def _sample(self):
        while not self._stop.is_set():
            try:
                for worker in psutil.Process(self.server_pid).children():
                    self.workers[worker.pid] = max(self.workers.get(worker.pid, 0), worker.memory_info().rss)
                fake = psutil.Process(self.env.upstream.process.pid)
                total = sum(p.memory_info().rss for p in [fake, *fake.children()])
                self.upstream = max(self.upstream, total)
            except psutil.NoSuchProcess:
                pass
            self._stop.wait(self.interval)

    def worker_mb(self):
        return [round(rss / 2**20) for _, rss in sorted(self.workers.items())]


def _wrk(url, connections, duration, token):
    """One wrk run with capacity.lua; its summary (a count per status, 200s per second).

    The closed loop starts with every client waiting and wrk stops with every client waiting,
    so ``steady`` is the mean of the 200s in the whole seconds after the first round of answers
    (one mean answer time, at least the upstream's) up to the last second before wrk stopped, and
    ``worst_second`` the least of them (a second with no answer counts as 0).
    """
    env = {
        **os.environ,
        "BENCH_METHOD": "POST",
        "BENCH_BODY": BODY,
        "BENCH_AUTH": token,
        "BENCH_LUA_DIR": str(SCRIPT.parent),
    }
    args = [require_wrk(), "-t1", f"-c{connections}", f"-d{duration}s", "--timeout", f"{WRK_TIMEOUT_SECONDS}s"]
    started = time.time()
    completed = subprocess.run([*args, "-s", str(SCRIPT), url], env=env, capture_output=True, text=True, check=True)
    ended = time.time()
    for line in completed.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            summary = json.loads(line[len("BENCH_JSON ") :])
            break
    else:
        raise RuntimeError(f"wrk printed no summary:\n{completed.stdout}\n{completed.stderr}")
    per_second = {int(second): count for second, count in summary["ok_per_second"].items()}
    first_round = max(UPSTREAM_LATENCY_MS / 1000, summary["mean_us"] / 1e6)
    whole = range(int(started + first_round) + 1, int(ended))
    counts = [per_second.get(second, 0) for second in whole]
    summary["steady"] = sum(counts) / len(counts) if counts else None
    summary["worst_second"] = min(counts) if counts else None
    summary["series"] = [per_second.get(second, 0) for second in range(min(per_second, default=0), int(ended) + 1)]
    return summary


def wrk_level(env, url, clients, seconds, token, user_id=None, server_pid=None):
    """A warm-up, then ``seconds`` of closed-loop load at ``clients`` connections (on the gateway, or
    on the proxy whose gunicorn master is ``server_pid``)."""
    _wrk(url, clients, WARMUP_SECONDS, token)
    if user_id:  # the gateway finishes what the warm-up's clients left behind first
        wait_settled(env.database_url, user_id)
    else:
        time.sleep(UPSTREAM_LATENCY_MS / 1000 + 0.5)
    cpu = CpuMeter(env, gateway_pid=server_pid)
    cpu.start()
    with Peaks(env, server_pid=server_pid) as peaks:
        summary = _wrk(url, clients, seconds, token)
    ok = summary["statuses"].get("200", 0)
    elapsed = summary["duration_us"] / 1e6
    errors = {f"status {status}": n for status, n in summary["statuses"].items() if status != "200"}
    for kind, field in (("connect", "connect_errors"), ("read", "read_errors"), ("write", "write_errors")):
        if summary[field]:
            errors[kind] = summary[field]
    if summary["timeouts"]:  # answers slower than --timeout; every 2 s, each connection waiting longer
        errors["timeouts"] = summary["timeouts"]
    return {
        "clients": clients,
        "completions": ok,
        "per_second": summary["steady"] if summary["steady"] is not None else ok / elapsed,
        "worst_second": summary["worst_second"],
        "ideal": clients / (UPSTREAM_LATENCY_MS / 1000),
        "p50": summary["p50_us"] / 1000,
        "p99": summary["p99_us"] / 1000,
        "max": summary["max_us"] / 1000,
        "errors": errors,
        "worker_mb": peaks.worker_mb(),
        "workers_replaced": peaks.replaced,
        "upstream_mb": round(peaks.upstream / 2**20),
        "cpu_ms": cpu.stop(ok),
        "series": summary["series"],
    }


class LogWatch:
    """Warnings and errors the gateway logged from now on (JSON lines, and gunicorn's own)."""

    def __init__(self, path):
        self.path = Path(path)
        self.offset = self.path.stat().st_size

    def problems(self):
        counts, examples = Counter(), {}
        with self.path.open("rb") as handle:
            handle.seek(self.offset)
            for raw in handle:
                line = raw.decode("utf-8", "replace").strip()
                key = _problem_key(line)
                if key:
                    counts[key] += 1
                    examples.setdefault(key, line[:400])
        return {"counts": counts, "examples": examples}


def _problem_key(line):
    """A short key for a warning or error line, None for anything else."""
    if line.startswith("{"):
        try:
            record = json.loads(line)
        except ValueError:
            return None
        if record.get("level") not in ("WARNING", "ERROR", "CRITICAL"):
            return None
        return f"{record['level']} {record.get('message', '')[:80]}"
    for level in ("[CRITICAL]", "[ERROR]", "[WARNING]"):
        if level in line:
            return f"{level.strip('[]')} {line.split(level, 1)[1].strip()[:80]}"
    if line.startswith("Traceback") or "Error:" in line:
        return f"stderr {line[:80]}"
    return None


def errors_text(errors):
    return ", ".join(f"{kind} {count}" for kind, count in errors.items()) or "0"


def level_line(r):
    cpu = f"  CPU ms/completion {', '.join(f'{name} {ms:.2f}' for name, ms in r['cpu_ms'].items())}"
    replaced = f"  WORKERS REPLACED {r['workers_replaced']}" if r["workers_replaced"] else ""
    series = f"\n        200s per second: {' '.join(map(str, r['series']))}"
    return (
        f"c={r['clients']:<5} {r['per_second']:7.1f} completions/s (ideal {r['ideal']:.0f}, worst second"
        f" {r['worst_second']})"
        f"  added p50 {r['p50'] - UPSTREAM_LATENCY_MS:+8.1f} ms  p99 {r['p99'] - UPSTREAM_LATENCY_MS:+8.1f} ms"
        f"  errors {errors_text(r['errors'])}  RSS/worker {r['worker_mb']} MB{cpu}{replaced}{series}"
    )


def log_lines(log):
    if not log["counts"]:
        return ["gateway log: no warnings or errors"]
    lines = [f"gateway log: {sum(log['counts'].values())} warning/error lines"]
    for key, count in log["counts"].most_common(8):
        lines.append(f"  {count} x {key}")
        lines.append(f"      e.g. {log['examples'][key]}")
    return lines


def rss_text(r, upstream_only):
    """Peak RSS: each gateway worker (and how many were replaced), then the fake's processes together."""
    fake = f"fake {r['upstream_mb']}"
    if upstream_only:
        return fake
    replaced = f" ({r['workers_replaced']} replaced)" if r["workers_replaced"] else ""
    return " / ".join(str(mb) for mb in r["worker_mb"]) + replaced + f" · {fake}"
