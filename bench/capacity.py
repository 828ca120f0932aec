"""Capacity: how many concurrent slow completions one gateway instance holds.

The fake OpenRouter answers in 1 s (non-streamed) or streams 20 chunks over 2 s, as a real model
does, so concurrency, not CPU per request, is what is measured: closed-loop wrk at 128, 512 and
2000 connections, then 2000 clients holding streams open at once (``bench/slow_client.py``),
each first straight at the fake (it must not be the limit), then through the gateway. After the
streams the books must show each stream charged exactly once.
"""

import json
import subprocess
import sys

from bench import baseline, slow_load
from bench.cpu import CpuMeter

LEVELS = (128, 512, 2000)
STREAM_CLIENTS = 2000
STREAMS_PER_CLIENT = 2
STREAM_CHUNKS = 20
CHUNK_DELAY_MS = 100
STREAM_SECONDS = STREAM_CHUNKS * CHUNK_DELAY_MS / 1000
STREAM_TIMEOUT_SECONDS = 60
STREAM_BODY = json.dumps(
    {"model": "openai/gpt-4o-mini", "messages": slow_load.MESSAGES, "max_tokens": STREAM_CHUNKS, "stream": True}
)


def run(env, seconds=15, levels=LEVELS, stream_clients=STREAM_CLIENTS):
    """Every level, then the streams; return (results, markdown lines)."""
    slow_load.check_open_files(max(*levels, stream_clients))
    user_id, key = slow_load.create_user(env, "bench-capacity@example.com")
    stream_user_id, stream_key = slow_load.create_user(env, "bench-capacity-streams@example.com")
    log = slow_load.LogWatch(env.gateway.log_path)
    results = {"levels": [], "log": None}
    try:
        slow_load.faults(env, latency_ms=slow_load.UPSTREAM_LATENCY_MS)
        direct = slow_load.wrk_level(env, f"{env.upstream.base_url}/chat/completions", max(levels), seconds, "or-key")
        print(f"  upstream alone   {slow_load.level_line(direct)}", flush=True)
        results["direct"] = direct
        for clients in levels:
            slow_load.wait_settled(env.database_url, user_id)
            result = slow_load.wrk_level(env, f"{env.gateway.url}/v1/chat/completions", clients, seconds, key, user_id)
            print(f"  gateway          {slow_load.level_line(result)}", flush=True)
            results["levels"].append(result)
        with baseline.bare_proxy(env) as (proxy, proxy_key):  # the yardstick, at the first level
            url, pid = f"{proxy.url}/v1/chat/completions", proxy.process.pid
            results["bare"] = slow_load.wrk_level(env, url, levels[0], seconds, proxy_key, server_pid=pid)
        print(f"  bare proxy       {slow_load.level_line(results['bare'])}", flush=True)
        slow_load.wait_settled(env.database_url, user_id)
        slow_load.faults(env, latency_ms=0, chunk_delay_ms=CHUNK_DELAY_MS)
        results["streams_direct"] = _streams(env, f"{env.upstream.base_url}/chat/completions", stream_clients, "k")
        print(f"  upstream alone   {_stream_line(results['streams_direct'])}", flush=True)
        streams = _streams(env, f"{env.gateway.url}/v1/chat/completions", stream_clients, stream_key)
        print(f"  gateway          {_stream_line(streams)}", flush=True)
        streams["books"] = _stream_books(env.database_url, stream_user_id, streams["started"])
        print(f"  books: {streams['books']['text']}", flush=True)
        results["streams"] = streams
    finally:
        slow_load.faults(env, reset=True)
    results["log"] = log.problems()
    for line in slow_load.log_lines(results["log"]):
        print(f"  {line}", flush=True)
    return results, _markdown(env, results, seconds)


def _streams(env, url, clients, token):
    """``clients`` gevent clients, each opening STREAMS_PER_CLIENT streams one after the other."""
    args = [sys.executable, "-m", "bench.slow_client", url, "--clients", str(clients), "--stream"]
    args += ["--requests", str(STREAMS_PER_CLIENT), "--body", STREAM_BODY, "--token", token]
    args += ["--timeout", str(STREAM_TIMEOUT_SECONDS)]
    cpu = CpuMeter(env)
    cpu.start()
    with slow_load.Peaks(env) as peaks:
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
    slow_load.wait_settled(database_url, user_id)
    with slow_load.cursor(database_url) as cur:
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


def _stream_line(r):
    total, first = r["total_ms"] or {"p50": 0, "p99": 0}, r["first_byte_ms"] or {"p50": 0, "p99": 0}
    return (
        f"{r['clients']} clients x {STREAMS_PER_CLIENT} streams: {r['completed']}/{r['requests']} completed,"
        f" peak open {r['peak_open']}, wall {r['wall_s']:.1f} s (ideal {r['ideal_wall']:.0f}),"
        f" {r['per_second']:.0f} streams/s (ideal {r['ideal_per_second']:.0f}),"
        f" stream p50 {total['p50']:.0f} ms p99 {total['p99']:.0f} ms, first byte p50 {first['p50']:.0f} ms"
        f" p99 {first['p99']:.0f} ms, errors {slow_load.errors_text(r['errors'])}, RSS/worker {r['worker_mb']} MB,"
        f" CPU ms/stream {', '.join(f'{name} {ms:.2f}' for name, ms in r['cpu_ms'].items())}"
    )


def _markdown(env, results, seconds):
    gateway = env.describe()["gateway"]
    lines = [
        f"Gateway: {gateway}. Upstream answers in {slow_load.UPSTREAM_LATENCY_MS} ms; closed-loop wrk (1 thread,"
        f" --timeout {slow_load.WRK_TIMEOUT_SECONDS}s), {slow_load.WARMUP_SECONDS} s warm-up"
        f" then {seconds} s per level.",
        "",
        "| clients | completions/s (ideal) | worst second | added p50 / p99 ms | max ms | errors"
        " | peak RSS MB: gateway workers · fake | CPU ms per completion: gateway / upstream |",
        "|---|---|---|---|---|---|---|---|",
    ]
    rows = [("upstream alone", results["direct"])] + [("", r) for r in results["levels"]]
    for label, r in rows + [("bare proxy", results["bare"])]:
        upstream_only = label == "upstream alone"
        cpu = ("—" if upstream_only else f"{r['cpu_ms']['gateway']:.2f}") + f" / {r['cpu_ms']['upstream']:.2f}"
        rss = slow_load.rss_text(r, upstream_only)
        added = f"{r['p50'] - slow_load.UPSTREAM_LATENCY_MS:+.0f} / {r['p99'] - slow_load.UPSTREAM_LATENCY_MS:+.0f}"
        lines.append(
            f"| {r['clients']}{f' ({label})' if label else ''} | {r['per_second']:.0f} ({r['ideal']:.0f})"
            f" | {r['worst_second']} | {added} | {r['max']:.0f}"
            f" | {slow_load.errors_text(r['errors'])} | {rss} | {cpu} |"
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
        rss = slow_load.rss_text(r, label)
        cpu = (f"{r['cpu_ms']['gateway']:.2f}" if not label else "—") + f" / {r['cpu_ms']['upstream']:.2f}"
        lines.append(
            f"| {r['requests']}{f' ({label})' if label else ''} | {r['completed']} | {r['peak_open']}"
            f" | {slow_load.errors_text(r['errors'])} | {r['wall_s']:.1f} ({r['ideal_wall']:.0f})"
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
