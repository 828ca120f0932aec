"""The fake's HTTP/1.1 server on gevent, and its command line.

Each keep-alive connection is a greenlet reading requests off its socket, so a request costs one
wake-up and a little parsing, and slow answers wait in ``gevent.sleep`` holding nothing but their
own greenlet. Nothing is monkey-patched; the server only uses gevent's own sockets and sleep, so
it also runs in a thread of another program (the tests).

A streamed body that raises StreamCut (``cut_stream_after``) has its connection dropped there, with
no end to its chunked encoding: the client sees an upstream that broke mid-stream. A stream whose
client goes away is closed at once, so it records the generation it produced so far.
"""

import argparse
import os
import signal
import socket
import threading
from http.client import responses as REASONS

import gevent
from gevent.pool import Pool
from gevent.server import StreamServer

from devtools.fake_openrouter.faults import FaultSwitches, default_state_file
from devtools.fake_openrouter.generations import GenerationLog, generations_directory
from devtools.fake_openrouter.replies import StreamCut
from devtools.fake_openrouter.routes import FakeOpenRouter, error_reply

DEFAULT_PORT = 8099
# Longer than a client pool's idle time, so reused connections are not cut mid-request.
KEEPALIVE_SECONDS = 75
MAX_HEAD_BYTES = 64 * 1024
# Connections the kernel queues before accept: a benchmark opens thousands at once.
LISTEN_BACKLOG = 4096


class FakeOpenRouterServer:
    """Binds at once; ``serve_forever`` then answers every accepted connection with ``fake``.

    The listening socket is a plain one (made non-blocking), so processes forked after binding
    can each serve it with their own gevent hub; ``shutdown`` may be called from any thread.
    """

    def __init__(self, address, fake):
        """Listen on address ((host, 0) picks a free port: see server_address)."""
        self.fake = fake
        self.socket = socket.create_server(address, backlog=LISTEN_BACKLOG)
        # The processes sharing the socket race for each new connection; a loser must get EAGAIN.
        self.socket.setblocking(False)
        self.server_address = self.socket.getsockname()
        self._server = None
        self._loop = None
        self._thread = None
        self._running = threading.Event()
        self._stopped = threading.Event()

    def serve_forever(self):
        """Serve in this thread until ``shutdown``; open connections are then closed."""
        # A pool (unbounded) tracks the connections' greenlets so that stopping can end them.
        self._server = StreamServer(self.socket, self._connection, spawn=Pool())
        self._server.stop_timeout = 0  # idle keep-alive connections are not waited for
        self._server.max_accept = 1
        self._loop, self._thread = gevent.get_hub().loop, threading.get_ident()
        self._stopped.clear()
        self._running.set()
        try:
            self._server.serve_forever()
        finally:
            self._running.clear()
            self._stopped.set()

    def shutdown(self):
        """Stop serving; from another thread, also wait until ``serve_forever`` has returned."""
        if not self._running.is_set():
            return
        if threading.get_ident() == self._thread:  # a greenlet of the server itself
            self._server.stop()
        else:
            self._loop.run_callback_threadsafe(gevent.spawn, self._server.stop)  # stop() may block
            self._stopped.wait()

    def server_close(self):
        """Close the listening socket."""
        self.socket.close()

    def _connection(self, sock, address):
        _serve_connection(sock, self.fake)


def _serve_connection(sock, fake):
    """Serve one client's requests until it closes the connection, asks to, or idles too long."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # events must not wait for ACKs
    sock.settimeout(KEEPALIVE_SECONDS)
    pending = b""
    try:
        while True:
            try:
                request = _read_request(sock, pending)
            except ValueError as problem:
                _send(sock, *error_reply(400, str(problem)), keep_alive=False)
                return
            if request is None:
                return
            method, target, body, keep_alive, pending, headers = request
            _send(sock, *fake.answer(method, target, body, headers), keep_alive=keep_alive)
            if not keep_alive:
                return
    except OSError:  # the client went away, or idled past KEEPALIVE_SECONDS
        return
    except StreamCut:  # the stream breaks off: drop the connection mid-body
        return
    finally:
        sock.close()


def _read_request(sock, pending):
    """Read one request after the bytes already received.

    Returns (method, target, body, keep_alive, bytes received past it), None if the client closed
    the connection first; raises ValueError for what this server cannot read.
    """
    while (head_end := pending.find(b"\r\n\r\n")) < 0:
        if len(pending) > MAX_HEAD_BYTES:
            raise ValueError("request head too large")
        received = sock.recv(65536)
        if not received:
            return None
        pending += received
    request_line, *header_lines = pending[:head_end].decode("latin-1").split("\r\n")
    method, target, version = request_line.split(" ")
    if not version.startswith("HTTP/"):
        raise ValueError("not an HTTP request")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if "transfer-encoding" in headers:
        raise ValueError("chunked request bodies are not supported; send Content-Length")
    length = int(headers.get("content-length", "0"))
    if length < 0:
        raise ValueError("negative Content-Length")
    if headers.get("expect", "").lower() == "100-continue":
        sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
    body_end = head_end + 4 + length
    while len(pending) < body_end:
        received = sock.recv(max(65536, body_end - len(pending)))
        if not received:
            return None
        pending += received
    keep_alive = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
    return method, target, pending[head_end + 4 : body_end], keep_alive, pending[body_end:], headers


def _send(sock, status, headers, body, keep_alive):
    """Write one response: bytes in a single send with a Content-Length, an iterator chunk by chunk.

    An iterator is closed however the sending ends, so that a stream whose client went away
    records what it produced at once.
    """
    head = f"HTTP/1.1 {status} {REASONS.get(status, '')}\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in headers)
    if not keep_alive:
        head += "Connection: close\r\n"
    if isinstance(body, bytes):
        sock.sendall(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
        return
    try:
        sock.sendall(f"{head}Transfer-Encoding: chunked\r\n\r\n".encode())
        for text in body:
            data = text.encode()
            sock.sendall(b"%x\r\n%s\r\n" % (len(data), data))
    finally:
        body.close()
    sock.sendall(b"0\r\n\r\n")


def serve(server, workers):
    """Serve from this process and workers - 1 forked copies sharing its listening socket.

    SIGTERM or Ctrl-C here stops the copies first; if this process dies without that chance, the
    copies see the pipe it held reach end-of-file and exit too. No gevent hub exists before the
    fork: each process makes its own in ``serve_forever``.
    """
    lifeline, held_by_parent = os.pipe()
    children = []
    for _ in range(workers - 1):
        pid = os.fork()
        if pid == 0:
            os.close(held_by_parent)
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the parent, which stops us
            threading.Thread(target=lambda: (os.read(lifeline, 1), os._exit(0)), daemon=True).start()
            try:
                server.serve_forever()
            finally:
                os._exit(1)  # never fall through into the parent's part
        children.append(pid)
    os.close(lifeline)

    def stop():
        for pid in children:
            os.kill(pid, signal.SIGTERM)
        for pid in children:
            os.waitpid(pid, 0)
        server.shutdown()

    gevent.signal_handler(signal.SIGTERM, stop)
    gevent.signal_handler(signal.SIGINT, stop)
    server.serve_forever()


def main(argv=None):
    """Start the fake server from the command line, resetting its faults and generations first."""
    parser = argparse.ArgumentParser(description="A fake OpenRouter for development, tests and benchmarks.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--workers", type=int, default=1, help="processes sharing the port (default 1)")
    parser.add_argument("--state-file", help="fault switches file shared by the workers")
    args = parser.parse_args(argv)
    state_file = args.state_file or os.environ.get("FAKE_OPENROUTER_STATE_FILE") or default_state_file(args.port)
    # A previous run's switches (an outage left on by a crashed test) must not leak into this one.
    FaultSwitches(state_file).reset()
    GenerationLog(generations_directory(state_file)).clear()
    server = FakeOpenRouterServer((args.host, args.port), FakeOpenRouter(state_file))
    print(
        f"fake OpenRouter listening on http://{args.host}:{args.port}/api/v1 "
        f"(workers={args.workers}, state file {state_file})",
        flush=True,
    )
    serve(server, max(args.workers, 1))
