"""Oversized bodies: ``Content-Length: 104857600`` streamed as fast as the gateway takes it.

Time to the 413 status line and the workers' RSS growth, for one request or several at once,
with or without a key.
"""

import select
import socket
import statistics
import threading
import time

import psutil

BIG_BODY_BYTES = 100 * 2**20
BIG_BODY_GIVE_UP_SECONDS = 10
CHUNK = b"x" * 65536
TARGET_413_MS = 100
TARGET_RSS_GROWTH_MB = 10


def worker_rss(env):
    """{pid: RSS bytes} of the gateway's workers."""
    rss = {}
    for worker in psutil.Process(env.gateway.process.pid).children():
        try:
            rss[worker.pid] = worker.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return rss


def _send_big_body(host, port, token, out):
    """One 100 MB POST, body streamed while the socket takes it; the answer read as it comes."""
    head = ["POST /v1/chat/completions HTTP/1.1", f"Host: {host}:{port}", "Content-Type: application/json"]
    if token:
        head.append(f"Authorization: Bearer {token}")
    head.append(f"Content-Length: {BIG_BODY_BYTES}")
    pending = memoryview(("\r\n".join(head) + "\r\n\r\n").encode())
    head_length, sent = len(pending), 0
    sent_body, answer, status_ms, fin_ms, ending = 0, b"", None, None, "gave up"
    sock = socket.create_connection((host, port), timeout=10)
    sock.setblocking(False)
    started = time.perf_counter()
    give_up = time.monotonic() + BIG_BODY_GIVE_UP_SECONDS
    try:
        while time.monotonic() < give_up:
            want_write = len(pending) > 0 or sent_body < BIG_BODY_BYTES
            if not want_write:
                ending = "all sent"
                break
            # After the gateway's FIN, go on sending, as a client that ignores the answer does.
            readable, writable, _ = select.select([] if fin_ms is not None else [sock], [sock], [], 0.5)
            if readable:
                data = sock.recv(65536)
                if not data:
                    fin_ms = (time.perf_counter() - started) * 1000
                    continue
                answer += data
                if status_ms is None and b"\r\n" in answer:
                    status_ms = (time.perf_counter() - started) * 1000
            if writable:
                if not pending:
                    size = min(len(CHUNK), BIG_BODY_BYTES - sent_body)
                    pending = memoryview(CHUNK[:size])
                    sent_body += size
                count = sock.send(pending)
                sent += count
                pending = pending[count:]
    except ConnectionResetError:
        ending = "reset"
    except BrokenPipeError:
        ending = "broken pipe"
    finally:
        sock.close()
    status_line = answer.split(b"\r\n", 1)[0].decode("latin-1")
    out.append(
        {
            "status": status_line.split(" ")[1] if status_line.startswith("HTTP/") else None,
            "status_ms": status_ms,
            "fin_ms": fin_ms,
            "ended_ms": (time.perf_counter() - started) * 1000,
            "ending": ending,
            "body_sent_mb": max(0, sent - head_length) / 2**20,
            "code": b'"payload_too_large"' in answer,
        }
    )


def measure(env, host, port, parallel, token):
    """``parallel`` 100 MB POSTs at once; the time to each 413 and the workers' RSS before, peak, after."""
    time.sleep(0.5)
    before = worker_rss(env)
    peak, stop = dict(before), threading.Event()

    def sample():
        while not stop.wait(0.05):
            for pid, rss in worker_rss(env).items():
                peak[pid] = max(peak.get(pid, 0), rss)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    requests_out = []
    threads = [threading.Thread(target=_send_big_body, args=(host, port, token, requests_out)) for _ in range(parallel)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    time.sleep(1.0)  # the gateway's 1 s linger, then the worker settles
    stop.set()
    sampler.join()
    after = worker_rss(env)
    statuses = {}
    for r in requests_out:
        statuses[r["status"] or r["ending"]] = statuses.get(r["status"] or r["ending"], 0) + 1
    times = [r["status_ms"] for r in requests_out if r["status_ms"] is not None]
    return {
        "parallel": parallel,
        "key": bool(token),
        "statuses": statuses,
        "status_ms": {"max": max(times), "p50": statistics.median(times)} if times else None,
        "fin_ms": max((r["fin_ms"] for r in requests_out if r["fin_ms"] is not None), default=None),
        "ended_ms": max(r["ended_ms"] for r in requests_out),
        "endings": sorted({r["ending"] for r in requests_out}),
        "body_sent_mb": max(r["body_sent_mb"] for r in requests_out),
        "envelope": all(r["code"] for r in requests_out),
        "rss_growth_mb": (sum(after.values()) - sum(before.values())) / 2**20,
        "rss_peak_growth_mb": (sum(peak.values()) - sum(before.values())) / 2**20,
        "rss_mb": round(sum(after.values()) / 2**20),
        "workers_replaced": len(set(before) - set(after)),
    }


def label(r):
    return f"{r['parallel']} x 100 MB, {'valid key' if r['key'] else 'no key'}"


def line(r):
    t = r["status_ms"]
    timing = f"413 after {t['p50']:.1f} ms (max {t['max']:.1f})" if t else "NO STATUS LINE"
    replaced = f"  WORKERS REPLACED {r['workers_replaced']}" if r["workers_replaced"] else ""
    replaced += "" if r["envelope"] else "  NOT ALL IN THE payload_too_large ENVELOPE"
    fin = f"FIN after {r['fin_ms']:.0f} ms, " if r["fin_ms"] is not None else "no FIN, "
    return (
        f"{label(r):<24} statuses {r['statuses']}  {timing}, {fin}{'/'.join(r['endings'])} after"
        f" {r['ended_ms']:.0f} ms (up to {r['body_sent_mb']:.1f} MB sent)  RSS growth"
        f" {r['rss_growth_mb']:+.1f} MB (peak {r['rss_peak_growth_mb']:+.1f}) of {r['rss_mb']} MB{replaced}"
    )


def met(result):
    """Whether every request got its 413 in time and the workers grew less than the target."""
    times = result["status_ms"]
    return times is not None and times["max"] < TARGET_413_MS and result["rss_growth_mb"] < TARGET_RSS_GROWTH_MB
