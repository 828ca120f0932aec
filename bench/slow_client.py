"""Thousands of concurrent HTTP clients in one process, on gevent: ``python -m bench.slow_client``.

wrk measures plain requests well but knows nothing of server-sent events. This client holds
``--clients`` keep-alive connections at once, each sending ``--requests`` POSTs one after the
other (closed loop), and reads each answer as it arrives: a stream counts as completed only when
``data: [DONE]`` came with no error event before it. It prints one ``BENCH_JSON {...}`` line:

- ``started``: answers whose status line was 200; ``completed``: those read to the end (for a
  stream, to ``[DONE]``); ``aborted``: started but not completed (timed out, connection broken,
  an error event in the stream);
- ``statuses``: every status line seen; ``failures``: requests with no status line, by reason;
- ``total_ms`` / ``first_byte_ms`` percentiles of completed requests, ``content_chunks`` (min and
  max per completed stream), ``peak_open`` (answers open at the same moment), ``wall_s``.

Plain sockets and a small HTTP/1.1 reader, no requests/urllib3: the client shares the cores
with what it measures and must cost little per event.
"""

import argparse
import json
import resource
import statistics
import sys
import time
from urllib.parse import urlsplit

import gevent
from gevent import socket

DONE = b"data: [DONE]"


class Closed(Exception):
    """The server closed the connection."""


class Connection:
    """One keep-alive connection and the bytes read past the last answer."""

    def __init__(self, host, port):
        self.sock = socket.create_connection((host, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""

    def close(self):
        self.sock.close()

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise Closed()
        self.buffer += data

    def read_until(self, marker):
        """Bytes up to and including ``marker``."""
        while (end := self.buffer.find(marker)) < 0:
            self._fill()
        end += len(marker)
        data, self.buffer = self.buffer[:end], self.buffer[end:]
        return data

    def read_exactly(self, count):
        while len(self.buffer) < count:
            self._fill()
        data, self.buffer = self.buffer[:count], self.buffer[count:]
        return data

    def body_parts(self, headers):
        """Yield the body as it arrives: chunked, by Content-Length, or up to the close."""
        if headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                size = int(self.read_until(b"\r\n").split(b";")[0], 16)
                if size == 0:
                    self.read_until(b"\r\n")  # no trailers are sent here
                    return
                yield self.read_exactly(size + 2)[:-2]
        elif "content-length" in headers:
            yield self.read_exactly(int(headers["content-length"]))
        else:
            while True:
                try:
                    self._fill()
                except Closed:
                    yield self.buffer
                    self.buffer = b""
                    return
                yield self.buffer
                self.buffer = b""


class Tally:
    """Outcomes shared by every client greenlet (one OS thread: no locks needed)."""

    def __init__(self):
        self.started = self.completed = self.aborted = self.open = self.peak_open = 0
        self.statuses, self.failures = {}, {}
        self.total_ms, self.first_byte_ms, self.chunks = [], [], []

    def opened(self):
        self.started += 1
        self.open += 1
        self.peak_open = max(self.peak_open, self.open)

    def fail(self, reason):
        self.failures[reason] = self.failures.get(reason, 0) + 1


def _one(connection, request, stream, tally):
    """Send one request and read its answer; returns whether the connection may be reused."""
    started = time.perf_counter()
    connection.sock.sendall(request)
    head = connection.read_until(b"\r\n\r\n").decode("latin-1")
    status_line, *header_lines = head[:-4].split("\r\n")
    status = int(status_line.split(" ", 2)[1])
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    tally.statuses[status] = tally.statuses.get(status, 0) + 1
    if status == 200:
        tally.opened()
    body, first_byte = [], None
    try:
        for part in connection.body_parts(headers):
            first_byte = first_byte or time.perf_counter()
            body.append(part)
    finally:
        if status == 200:
            tally.open -= 1
    text = b"".join(body)
    if status == 200:
        if stream and (DONE not in text or b'"error"' in text):
            tally.aborted += 1
        else:
            tally.completed += 1
            tally.total_ms.append((time.perf_counter() - started) * 1000)
            tally.first_byte_ms.append(((first_byte or time.perf_counter()) - started) * 1000)
            if stream:
                tally.chunks.append(text.count(b'"content": '))
    return headers.get("connection", "").lower() != "close"


def client(host, port, request, count, stream, timeout, tally):
    """One closed-loop client: ``count`` requests, each sent when the previous one answered."""
    connection = None
    for _ in range(count):
        before = tally.started
        try:
            with gevent.Timeout(timeout):
                if connection is None:
                    connection = Connection(host, port)
                reusable = _one(connection, request, stream, tally)
        except (gevent.Timeout, Closed, OSError) as problem:
            reason = {gevent.Timeout: "timeout", Closed: "closed"}.get(type(problem), type(problem).__name__)
            if tally.started > before:  # the 200 had come: the answer was cut short
                tally.aborted += 1
            else:
                tally.fail(reason)
            reusable = False
        if not reusable and connection is not None:
            connection.close()
            connection = None
    if connection is not None:
        connection.close()


def _percentiles(values):
    if not values:
        return {}
    if len(values) == 1:
        return {"p50": values[0], "p95": values[0], "p99": values[0], "max": values[0]}
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {"p50": statistics.median(values), "p95": cuts[94], "p99": cuts[98], "max": max(values)}


def run(url, clients, requests, body, token=None, stream=False, timeout=60.0):
    """Run the load and return the summary (see the module docstring)."""
    parts = urlsplit(url)
    headers = [f"POST {parts.path} HTTP/1.1", f"Host: {parts.netloc}", "Content-Type: application/json"]
    if token:
        headers.append(f"Authorization: Bearer {token}")
    payload = body.encode()
    headers.append(f"Content-Length: {len(payload)}")
    request = ("\r\n".join(headers) + "\r\n\r\n").encode() + payload
    tally = Tally()
    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    greenlets = [
        gevent.spawn(client, parts.hostname, parts.port, request, requests, stream, timeout, tally)
        for _ in range(clients)
    ]
    gevent.joinall(greenlets)
    wall = time.perf_counter() - started
    cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    return {
        "clients": clients,
        "requests": clients * requests,
        "wall_s": wall,
        "started": tally.started,
        "completed": tally.completed,
        "aborted": tally.aborted,
        "statuses": {str(status): count for status, count in sorted(tally.statuses.items())},
        "failures": tally.failures,
        "peak_open": tally.peak_open,
        "total_ms": _percentiles(tally.total_ms),
        "first_byte_ms": _percentiles(tally.first_byte_ms),
        "content_chunks": [min(tally.chunks), max(tally.chunks)] if tally.chunks else [],
        "client_cpu_s": cpu,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.slow_client", description=__doc__.splitlines()[0])
    parser.add_argument("url", help="http://host:port/path (POST)")
    parser.add_argument("--clients", type=int, required=True)
    parser.add_argument("--requests", type=int, default=1, help="requests per client, one after the other")
    parser.add_argument("--body", required=True, help="JSON request body")
    parser.add_argument("--token", help="bearer token")
    parser.add_argument("--stream", action="store_true", help="answers are SSE streams ending in [DONE]")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per request before giving up")
    args = parser.parse_args(argv)
    # A file descriptor per connection: take the hard limit.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    summary = run(args.url, args.clients, args.requests, args.body, args.token, args.stream, args.timeout)
    print("BENCH_JSON " + json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
