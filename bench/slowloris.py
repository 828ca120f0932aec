"""Slow clients held open against a server: ``python -m bench.slowloris host port``.

``--body N`` clients send complete headers with ``Content-Length: 100000`` (and the bearer
``--token``: the gateway reads a body that large only for a valid key) and then one body byte
every ``--interval`` seconds; ``--headers N`` clients send the request line and then one
header line every ``--interval`` seconds, never finishing. Whenever the server drops one, it is
opened again at once, so N + N connections stay open (or being opened) until SIGTERM. Prints
``READY`` once every connection is open, then on SIGTERM one ``BENCH_JSON {...}`` line:

- per kind: ``opened`` (connections, re-opens included), ``drops`` by outcome (``status 408``
  and the like: an answer came; ``closed``: end of stream with no answer; ``reset``: connection
  reset with no answer; ``connect failed``), ``answer_s`` and ``closed_s`` (seconds from the
  connection to the answer's status line / to the end of stream, min, p50, max), ``reopen_ms``
  (from a drop to the next connection in its place), ``open_at_end``;
- ``open_min`` / ``open_mean`` / ``open_max``: connections open (connected, not yet dropped),
  sampled every 0.1 s after READY (a drop and its re-open can fall either side of a sample).

On SIGTERM the connections are closed (FIN) as they are: a body client's half-sent body ends
early, as when a real client gives up.

gevent, one greenlet per connection: the process costs little CPU on the shared cores.
"""

import argparse
import json
import resource
import signal
import statistics
import sys
import time

import gevent
from gevent import socket
from gevent.event import Event

BODY_LENGTH = 100_000
SAFETY_SECONDS = 600  # stop on our own if nobody ever sends SIGTERM


class Kind:
    """Tallies of one kind of slow client."""

    def __init__(self, name):
        self.name = name
        self.opened = self.open = 0
        self.drops = {}
        self.answer_s, self.closed_s, self.reopen_ms = [], [], []

    def drop(self, outcome):
        self.drops[outcome] = self.drops.get(outcome, 0) + 1

    def summary(self):
        return {
            "opened": self.opened,
            "drops": self.drops,
            "answer_s": _spread(self.answer_s),
            "closed_s": _spread(self.closed_s),
            "reopen_ms": _spread(self.reopen_ms),
            "open_at_end": self.open,
        }


def _spread(values):
    if not values:
        return {}
    return {"n": len(values), "min": min(values), "p50": statistics.median(values), "max": max(values)}


def _request_head(host, port, kind, token):
    if kind == "body":
        authorization = f"Authorization: Bearer {token}\r\n" if token else ""
        return (
            f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
            f"{authorization}Content-Length: {BODY_LENGTH}\r\n\r\n"
        ).encode()
    return b"POST /v1/chat/completions HTTP/1.1\r\n"


def _one_connection(host, port, kind, tally, interval, stop, dropped_at, token=None):
    """Open one slow connection and trickle until the server drops it (or we are stopped).

    Returns when it was dropped (None when stopped)."""
    try:
        sock = socket.create_connection((host, port), timeout=10)
    except OSError:
        tally.drop("connect failed")
        stop.wait(0.1)
        return time.monotonic()
    opened = time.monotonic()
    if dropped_at is not None:
        tally.reopen_ms.append((opened - dropped_at) * 1000)
    tally.opened += 1
    tally.open += 1
    received, answered, sent, outcome = b"", None, 0, None
    try:
        sock.sendall(_request_head(host, port, kind, token))
        next_send = opened + interval
        while not stop.is_set():
            sock.settimeout(max(0.0, next_send - time.monotonic()) or 0.001)
            try:
                data = sock.recv(4096)
            except TimeoutError:
                sent += 1
                sock.sendall(b"x" if kind == "body" else f"X-Slow-{sent}: a\r\n".encode())
                next_send += interval
                continue
            if not data:
                outcome = "closed"
                break
            received += data
            if answered is None and b"\r\n" in received:
                answered = time.monotonic() - opened
        else:
            return None  # stopped: still open
    except OSError:
        outcome = "reset"
    finally:
        tally.open -= 1
        sock.close()
    if answered is not None:
        parts = received.split(b"\r\n", 1)[0].split(b" ")
        outcome = f"status {parts[1].decode('latin-1')}" if len(parts) > 1 else "garbled answer"
        tally.answer_s.append(answered)
    dropped = time.monotonic()
    tally.closed_s.append(dropped - opened)
    tally.drop(outcome)
    return dropped


def _keep_open(host, port, kind, tally, interval, stop, token=None):
    """One slot: a slow connection, re-opened as soon as the server drops it."""
    dropped_at = None
    while not stop.is_set():
        dropped_at = _one_connection(host, port, kind, tally, interval, stop, dropped_at, token)


def run(host, port, body_clients, header_clients, interval, token=None):
    kinds = {"body": Kind("body"), "headers": Kind("headers")}
    stop = Event()
    gevent.signal_handler(signal.SIGTERM, stop.set)
    slots = [(kinds["body"], "body")] * body_clients + [(kinds["headers"], "headers")] * header_clients
    greenlets = [gevent.spawn(_keep_open, host, port, kind, tally, interval, stop, token) for tally, kind in slots]
    wanted = body_clients + header_clients
    deadline = time.monotonic() + 30
    while sum(k.opened for k in kinds.values()) < wanted and time.monotonic() < deadline:
        gevent.sleep(0.05)
    print("READY", flush=True)
    low, high, samples = wanted, 0, []
    safety = time.monotonic() + SAFETY_SECONDS
    while not stop.wait(0.1) and time.monotonic() < safety:
        now_open = sum(k.open for k in kinds.values())
        low, high = min(low, now_open), max(high, now_open)
        samples.append(now_open)
    stop.set()
    gevent.joinall(greenlets, timeout=max(interval, 1) + 2)
    summary = {name: kind.summary() for name, kind in kinds.items()}
    mean = sum(samples) / len(samples) if samples else None
    summary.update(open_min=low, open_max=high, open_mean=mean, interval_s=interval, body_length=BODY_LENGTH)
    return summary


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.slowloris", description=__doc__.splitlines()[0])
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("--body", type=int, default=100, help="clients trickling a body")
    parser.add_argument("--headers", type=int, default=100, help="clients trickling header lines")
    parser.add_argument("--interval", type=float, default=3.0, help="seconds between bytes / header lines")
    parser.add_argument("--token", help="bearer key the body clients send")
    args = parser.parse_args(argv)
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    summary = run(args.host, args.port, args.body, args.headers, args.interval, args.token)
    print("BENCH_JSON " + json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
