"""Gateway overhead: one chat-completion load straight to the fake OpenRouter, then through the gateway."""

import json
import time

import psycopg2

from bench.cpu import CpuMeter
from bench.load import run_wrk

CONCURRENCY = (1, 8, 32)
MODEL = "openai/gpt-4o-mini"
BODY = json.dumps(
    {"model": MODEL, "messages": [{"role": "user", "content": "Say hello in five words."}], "max_tokens": 16}
)
TARGET_ADDED_P50_MS = 2.0
TARGET_RPS_AT_32 = 400


def run(env, duration, concurrency=CONCURRENCY):
    """Measure both paths at each concurrency; return (rows, markdown lines)."""
    _, key = env.create_user("bench-overhead@example.com")
    meter = CpuMeter(env)
    rows = []
    for connections in concurrency:
        direct = run_wrk(f"{env.upstream.base_url}/chat/completions", connections, duration, "POST", BODY, "or-key")
        print(f"  direct  {direct.line()}", flush=True)
        gateway = run_wrk(
            f"{env.gateway.url}/v1/chat/completions", connections, duration, "POST", BODY, key, meter=meter
        )
        print(f"  gateway {gateway.line()}", flush=True)
        print(f"  added p50 {gateway.p50 - direct.p50:+.2f} ms, p99 {gateway.p99 - direct.p99:+.2f} ms", flush=True)
        rows.append((direct, gateway))
    consistency = _check_books(env.database_url)
    print(f"  books: {consistency}", flush=True)
    return rows, _markdown(rows, consistency)


def _check_books(database_url):
    """After the load: no credit left on hold, and usage, ledger and balance agree to the cent."""
    conn = psycopg2.connect(database_url)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            for _ in range(50):  # requests wrk gave up on at the end may still be finishing
                cur.execute(
                    "SELECT (SELECT count(*) FROM usage_records), (SELECT coalesce(sum(cost), 0) FROM usage_records),"
                    " (SELECT -coalesce(sum(amount), 0) FROM credit_transactions WHERE kind = 'usage'),"
                    " (SELECT sum(reserved_credits) FROM users)"
                )
                records, usage_cost, ledger_cost, reserved = cur.fetchone()
                if reserved == 0:
                    break
                time.sleep(0.2)
    finally:
        conn.close()
    agree = usage_cost == ledger_cost and reserved == 0
    return f"{records} usage rows, usage cost {usage_cost} = ledger {ledger_cost}, on hold {reserved}" + (
        "" if agree else "  MISMATCH"
    )


def _markdown(rows, consistency):
    lines = [
        "| concurrency | direct req/s | direct p50 / p95 / p99 ms | gateway req/s | gateway p50 / p95 / p99 ms"
        " | added p50 / p99 ms | errors | CPU ms per request: gateway / upstream / postgres / redis |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for direct, gateway in rows:
        cpu = " / ".join(f"{gateway.cpu_ms.get(name, 0):.2f}" for name in ("gateway", "upstream", "postgres", "redis"))
        lines.append(
            f"| {direct.connections} | {direct.rps:.0f} | {direct.p50:.2f} / {direct.p95:.2f} / {direct.p99:.2f}"
            f" | {gateway.rps:.0f} | {gateway.p50:.2f} / {gateway.p95:.2f} / {gateway.p99:.2f}"
            f" | {gateway.p50 - direct.p50:+.2f} / {gateway.p99 - direct.p99:+.2f}"
            f" | {direct.errors + gateway.errors} | {cpu} |"
        )
    first, last = rows[0], rows[-1]
    added = first[1].p50 - first[0].p50
    lines += [
        "",
        f"- Added p50 at concurrency 1: {added:.2f} ms (target <= {TARGET_ADDED_P50_MS} ms):"
        f" {'met' if added <= TARGET_ADDED_P50_MS else 'MISSED'}.",
        f"- Gateway at concurrency {last[1].connections}: {last[1].rps:.0f} completions/s"
        f" (target >= {TARGET_RPS_AT_32}): {'met' if last[1].rps >= TARGET_RPS_AT_32 else 'MISSED'}.",
        f"- Books after the run: {consistency}.",
    ]
    return lines
