"""Capacity: how many concurrent slow completions one gateway instance holds.

The fake OpenRouter answers in 1 s (non-streamed) or streams 20 chunks over 2 s, as a real model
does, so concurrency, not CPU per request, is what is measured: closed-loop wrk at 128, 512 and
2000 connections, then 2000 clients holding streams open at once (``bench/slow_client.py``),
each first straight at the fake (it must not be the limit), then through the gateway. After the
streams the books must show each stream charged exactly once.
"""

import json
import os
import resource
import subprocess
import sys
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

LEVELS = (128, 512, 2000)
UPSTREAM_LATENCY_MS = 1000
WARMUP_SECONDS = 3
WRK_TIMEOUT_SECONDS = 30
STREAM_CLIENTS = 2000
STREAMS_PER_CLIENT = 2
STREAM_CHUNKS = 20
CHUNK_DELAY_MS = 100
STREAM_SECONDS = STREAM_CHUNKS * CHUNK_DELAY_MS / 1000
STREAM_TIMEOUT_SECONDS = 60
SCRIPT = Path(__file__).resolve().parent / "capacity.lua"
MESSAGES = [{"role": "user", "content": "Say hello in five words."}]
BODY = json.dumps({"model": "openai/gpt-4o-mini", "messages": MESSAGES, "max_tokens": 16})
STREAM_BODY = json.dumps(
    {"model": "openai/gpt-4o-mini", "messages": MESSAGES, "max_tokens": STREAM_CHUNKS, "stream": True}
)
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


def run(env, seconds=15, levels=LEVELS, stream_clients=STREAM_CLIENTS):
    """Every level, then the streams; return (results, markdown lines)."""
    _check_open_files(max(*levels, stream_clients))
    with _cursor(env.database_url) as cur:
        cur.execute(_PLAN_SQL, (PLAN,))
    user_id, key = env.create_user("bench-capacity@example.com", plan=PLAN)
    stream_user_id, stream_key = env.create_user("bench-capacity-streams@example.com", plan=PLAN)
    log = _LogWatch(env.gateway.log_path)
    results = {"levels": [], "log": None}
    try:
        _faults(env, latency_ms=UPSTREAM_LATENCY_MS)
        direct = _wrk_level(env, f"{env.upstream.base_url}/chat/completions", max(levels), seconds, "or-key")
        print(f"  upstream alone   {_level_line(direct)}", flush=True)
        results["direct"] = direct
        for clients in levels:
            _wait_settled(env.database_url, user_id)
            result = _wrk_level(env, f"{env.gateway.url}/v1/chat/completions", clients, seconds, key, user_id)
            print(f"  gateway          {_level_line(result)}", flush=True)
            results["levels"].append(result)
        _wait_settled(env.database_url, user_id)
        _faults(env, latency_ms=0, chunk_delay_ms=CHUNK_DELAY_MS)
        results["streams_direct"] = _streams(env, f"{env.upstream.base_url}/chat/completions", stream_clients, "k")
        print(f"  upstream alone   {_stream_line(results['streams_direct'])}", flush=True)
        streams = _streams(env, f"{env.gateway.url}/v1/chat/completions", stream_clients, stream_key)
        print(f"  gateway          {_stream_line(streams)}", flush=True)
        streams["books"] = _stream_books(env.database_url, stream_user_id, streams["started"])
        print(f"  books: {streams['books']['text']}", flush=True)
        results["streams"] = streams
    finally:
        _faults(env, reset=True)
    results["log"] = log.problems()
    for line in _log_lines(results["log"]):
        print(f"  {line}", flush=True)
    return results, _markdown(env, results, seconds)


@contextmanager
def _cursor(database_url):
    """A cursor on an autocommit connection, closed afterwards."""
    conn = psycopg2.connect(database_url)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            yield cur
    finally:
        conn.close()


def _check_open_files(connections):
    """Each connection is a descriptor in wrk and two in the gateway (client, upstream): say if too few."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2 * connections + 1000:
        print(f"  WARNING: RLIMIT_NOFILE is {soft}; {connections} connections need more", flush=True)


def _faults(env, reset=False, **switches):
    """Set the fake's fault switches (every process sees them within RECHECK_SECONDS)."""
    url = f"{env.upstream.url}/_control" + ("/reset" if reset else "")
    requests.post(url, json=None if reset else switches, timeout=10).raise_for_status()
    time.sleep(0.5)


def _wait_settled(database_url, user_id, timeout=60):
    """Wait until the requests a load tool abandoned have finished: nothing on hold for the user and
    no new usage row for a second (a request still queued in the gateway holds nothing yet)."""
    deadline = time.monotonic() + timeout
    previous = None
    with _cursor(database_url) as cur:
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


class _Peaks:
    """Samples resident memory while a load runs: peak per gateway worker, peak of the fake's processes."""

    def __init__(self, env, interval=0.2):
        self.env = env
        self.interval = interval
        self.workers = {}  # pid -> peak RSS bytes
        self.upstream = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self):
        self._before = {p.pid for p in psutil.Process(self.env.gateway.process.pid).children()}
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        after = {p.pid for p in psutil.Process(self.env.gateway.process.pid).children()}
        self.replaced = len(self._before - after)  # workers that died (crash, timeout) during the load
        return False

    def _sample(self):
        while not self._stop.is_set():
            try:
                for worker in psutil.Process(self.env.gateway.process.pid).children():
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


def _wrk_level(env, url, clients, seconds, token, user_id=None):
    """A warm-up, then ``seconds`` of closed-loop load at ``clients`` connections."""
    _wrk(url, clients, WARMUP_SECONDS, token)
    if user_id:  # the gateway finishes what the warm-up's clients left behind first
        _wait_settled(env.database_url, user_id)
    else:
        time.sleep(UPSTREAM_LATENCY_MS / 1000 + 0.5)
    cpu = CpuMeter(env)
    cpu.start()
    with _Peaks(env) as peaks:
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


def _streams(env, url, clients, token):
    """``clients`` gevent clients, each opening STREAMS_PER_CLIENT streams one after the other."""
    args = [sys.executable, "-m", "bench.slow_client", url, "--clients", str(clients), "--stream"]
    args += ["--requests", str(STREAMS_PER_CLIENT), "--body", STREAM_BODY, "--token", token]
    args += ["--timeout", str(STREAM_TIMEOUT_SECONDS)]
    cpu = CpuMeter(env)
    cpu.start()
    with _Peaks(env) as peaks:
        completed = subprocess.run(args, capture_output=True, text=True, check=True)
    lines = [line for line in completed.stdout.splitlines() if line.startswith("BENCH_JSON ")]
    if not lines:
        raise RuntimeError(f"slow_client printed no summary:\n{completed.stdout}\n{completed.stderr}")
    result = json.loads(lines[0][len("BENCH_JSON ") :])
    errors = {f"status {status}": n for status, n in result["statuses"].items() if status != "200"}
    errors.update(result["failures"])
    if result["aborted"]:
        errors["cut short"] = result["aborted"]
    result.update(
        errors=errors,
        per_second=result["completed"] / result["wall_s"],
        ideal_per_second=clients / STREAM_SECONDS,
        ideal_wall=STREAMS_PER_CLIENT * STREAM_SECONDS,
        worker_mb=peaks.worker_mb(),
        workers_replaced=peaks.replaced,
        upstream_mb=round(peaks.upstream / 2**20),
        cpu_ms=cpu.stop(result["completed"]),
    )
    return result


def _stream_books(database_url, user_id, started):
    """Each stream that started is charged once: usage rows = streams started, ledger = usage, nothing held."""
    _wait_settled(database_url, user_id)
    with _cursor(database_url) as cur:
        cur.execute(
            "SELECT count(*), count(*) FILTER (WHERE status = 'success'), coalesce(sum(cost), 0)"
            " FROM usage_records WHERE user_id = %(u)s",
            {"u": user_id},
        )
        rows, successes, usage_cost = cur.fetchone()
        cur.execute(
            "SELECT count(*), -coalesce(sum(amount), 0) FROM credit_transactions WHERE user_id = %s AND kind = 'usage'",
            (user_id,),
        )
        debits, ledger_cost = cur.fetchone()
        cur.execute("SELECT reserved_credits FROM users WHERE id = %s", (user_id,))
        reserved = cur.fetchone()[0]
    agree = rows == started and usage_cost == ledger_cost and reserved == 0
    text = (
        f"{rows} usage rows ({successes} success, {rows - successes} other) for {started} streams started,"
        f" {debits} ledger debits, usage cost {usage_cost} = ledger {ledger_cost}, on hold {reserved}"
    ) + ("" if agree else "  MISMATCH")
    return {"rows": rows, "started": started, "agree": agree, "text": text}


class _LogWatch:
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


def _errors_text(errors):
    return ", ".join(f"{kind} {count}" for kind, count in errors.items()) or "0"


def _level_line(r):
    cpu = f"  CPU ms/completion {', '.join(f'{name} {ms:.2f}' for name, ms in r['cpu_ms'].items())}"
    replaced = f"  WORKERS REPLACED {r['workers_replaced']}" if r["workers_replaced"] else ""
    series = f"\n        200s per second: {' '.join(map(str, r['series']))}"
    return (
        f"c={r['clients']:<5} {r['per_second']:7.1f} completions/s (ideal {r['ideal']:.0f}, worst second"
        f" {r['worst_second']})"
        f"  added p50 {r['p50'] - UPSTREAM_LATENCY_MS:+8.1f} ms  p99 {r['p99'] - UPSTREAM_LATENCY_MS:+8.1f} ms"
        f"  errors {_errors_text(r['errors'])}  RSS/worker {r['worker_mb']} MB{cpu}{replaced}{series}"
    )


def _stream_line(r):
    total, first = r["total_ms"] or {"p50": 0, "p99": 0}, r["first_byte_ms"] or {"p50": 0, "p99": 0}
    return (
        f"{r['clients']} clients x {STREAMS_PER_CLIENT} streams: {r['completed']}/{r['requests']} completed,"
        f" peak open {r['peak_open']}, wall {r['wall_s']:.1f} s (ideal {r['ideal_wall']:.0f}),"
        f" {r['per_second']:.0f} streams/s (ideal {r['ideal_per_second']:.0f}),"
        f" stream p50 {total['p50']:.0f} ms p99 {total['p99']:.0f} ms, first byte p50 {first['p50']:.0f} ms"
        f" p99 {first['p99']:.0f} ms, errors {_errors_text(r['errors'])}, RSS/worker {r['worker_mb']} MB,"
        f" CPU ms/stream {', '.join(f'{name} {ms:.2f}' for name, ms in r['cpu_ms'].items())}"
    )


def _log_lines(log):
    if not log["counts"]:
        return ["gateway log: no warnings or errors"]
    lines = [f"gateway log: {sum(log['counts'].values())} warning/error lines"]
    for key, count in log["counts"].most_common(8):
        lines.append(f"  {count} x {key}")
        lines.append(f"      e.g. {log['examples'][key]}")
    return lines


def _rss_text(r, upstream_only):
    """Peak RSS: each gateway worker (and how many were replaced), then the fake's processes together."""
    fake = f"fake {r['upstream_mb']}"
    if upstream_only:
        return fake
    replaced = f" ({r['workers_replaced']} replaced)" if r["workers_replaced"] else ""
    return " / ".join(str(mb) for mb in r["worker_mb"]) + replaced + f" · {fake}"


def _markdown(env, results, seconds):
    gateway = env.describe()["gateway"]
    lines = [
        f"Gateway: {gateway}. Upstream answers in {UPSTREAM_LATENCY_MS} ms; closed-loop wrk (1 thread,"
        f" --timeout {WRK_TIMEOUT_SECONDS}s), {WARMUP_SECONDS} s warm-up then {seconds} s per level.",
        "",
        "| clients | completions/s (ideal) | worst second | added p50 / p99 ms | max ms | errors"
        " | peak RSS MB: gateway workers · fake | CPU ms per completion: gateway / upstream |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, r in [("upstream alone", results["direct"])] + [("", r) for r in results["levels"]]:
        cpu = f"{r['cpu_ms']['gateway']:.2f}" if not label else "—"
        cpu += f" / {r['cpu_ms']['upstream']:.2f}"
        rss = _rss_text(r, label)
        added = f"{r['p50'] - UPSTREAM_LATENCY_MS:+.0f} / {r['p99'] - UPSTREAM_LATENCY_MS:+.0f}"
        lines.append(
            f"| {r['clients']}{f' ({label})' if label else ''} | {r['per_second']:.0f} ({r['ideal']:.0f})"
            f" | {r['worst_second']} | {added} | {r['max']:.0f}"
            f" | {_errors_text(r['errors'])} | {rss} | {cpu} |"
        )
    lines += [
        "",
        f"Streams: {STREAM_CHUNKS} chunks {CHUNK_DELAY_MS} ms apart ({STREAM_SECONDS:.0f} s) upstream; each client"
        f" (`bench/slow_client.py`, gevent) opens {STREAMS_PER_CLIENT} streams one after the other.",
        "",
        "| streams | completed | peak open | errors | wall s (ideal) | streams/s (ideal)"
        " | stream p50 / p99 ms | first byte p50 / p99 ms | peak RSS MB: gateway workers · fake"
        " | CPU ms per stream: gateway / upstream |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label, r in [("upstream alone", results.get("streams_direct")), ("", results.get("streams"))]:
        if not r:
            continue
        total, first = r["total_ms"] or {"p50": 0, "p99": 0}, r["first_byte_ms"] or {"p50": 0, "p99": 0}
        rss = _rss_text(r, label)
        cpu = (f"{r['cpu_ms']['gateway']:.2f}" if not label else "—") + f" / {r['cpu_ms']['upstream']:.2f}"
        lines.append(
            f"| {r['requests']}{f' ({label})' if label else ''} | {r['completed']} | {r['peak_open']}"
            f" | {_errors_text(r['errors'])} | {r['wall_s']:.1f} ({r['ideal_wall']:.0f})"
            f" | {r['per_second']:.0f} ({r['ideal_per_second']:.0f}) | {total['p50']:.0f} / {total['p99']:.0f}"
            f" | {first['p50']:.0f} / {first['p99']:.0f} | {rss} | {cpu} |"
        )
    if results.get("streams"):
        lines += ["", f"- Books after the streams: {results['streams']['books']['text']}."]
    log = results["log"]
    counts = log["counts"] if log else {}
    summary = "; ".join(f"{count} x {key}" for key, count in counts.most_common(5)) if counts else "none"
    lines.append(f"- Gateway log warnings and errors during the suite: {summary}.")
    return lines
