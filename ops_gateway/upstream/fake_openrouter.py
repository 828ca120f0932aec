"""A fake OpenRouter for development, end-to-end tests and benchmarks.

Answers are deterministic (same request, same usage and text) and cheap to produce, because
benchmarks use this server as the "direct" baseline and its CPU competes with the gateway's.
Faults (outage, latency, forced status, slow streams) are switched at run time through
``/_control`` and shared between worker processes through a small JSON state file.

It is its own small HTTP/1.1 server on gevent rather than Flask under gunicorn: each keep-alive
connection is a greenlet reading requests off its socket, so a request costs one wake-up and a
little parsing, and slow answers (latency, chunk delays) wait in ``gevent.sleep``, holding
nothing but their own greenlet: one process holds thousands of slow connections and open
streams (docs/performance.md, capacity suite). Nothing is monkey-patched; the server only uses
gevent's own sockets and sleep, so it also runs in a thread of another program (the tests).

Run it with ``python -m ops_gateway.upstream.fake_openrouter [--host H] [--port P] [--workers N]``.
"""

import argparse
import itertools
import json
import os
import signal
import socket
import tempfile
import threading
import time
from http.client import responses as REASONS

import gevent
from gevent.pool import Pool
from gevent.server import StreamServer

DEFAULT_PORT = 8099
DEFAULT_FAULTS = {"outage": False, "latency_ms": 0, "status": None, "chunk_delay_ms": 0}
# How stale another process's fault switches may be: one stat() per this interval, not per request.
RECHECK_SECONDS = 0.2
# A completion is max_tokens words long (one stream chunk each), DEFAULT_COMPLETION_TOKENS when
# the request gives none, never more than MAX_COMPLETION_TOKENS.
DEFAULT_COMPLETION_TOKENS = 16
MAX_COMPLETION_TOKENS = 256
# Longer than a client pool's idle time, so reused connections are not cut mid-request.
KEEPALIVE_SECONDS = 75
MAX_HEAD_BYTES = 64 * 1024
# Connections the kernel queues before accept: a benchmark opens thousands at once.
LISTEN_BACKLOG = 4096
JSON_HEADERS = (("Content-Type", "application/json"),)
SSE_HEADERS = (("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache"))

MODELS = [
    {
        "id": model_id,
        "name": name,
        "context_length": context_length,
        "pricing": {"prompt": prompt, "completion": completion},
    }
    for model_id, name, context_length, prompt, completion in [
        ("openai/gpt-4o-mini", "OpenAI: GPT-4o-mini", 128000, "0.00000015", "0.0000006"),
        ("anthropic/claude-3.5-sonnet", "Anthropic: Claude 3.5 Sonnet", 200000, "0.000003", "0.000015"),
        ("meta-llama/llama-3.1-8b-instruct", "Meta: Llama 3.1 8B Instruct", 131072, "0.00000002", "0.00000005"),
        ("google/gemini-flash-1.5", "Google: Gemini Flash 1.5", 1000000, "0.000000075", "0.0000003"),
        ("mistralai/mistral-7b-instruct", "Mistral: Mistral 7B Instruct", 32768, "0.00000003", "0.000000055"),
        ("test/free-model", "Test: Free Model", 8192, "0", "0"),
    ]
]
_MODEL_IDS = frozenset(model["id"] for model in MODELS)
_MODELS_BODY = json.dumps({"data": MODELS}).encode()
_WORDS = [f"word{i}" for i in range(MAX_COMPLETION_TOKENS)]
_REPLIES = [" ".join(_WORDS[:count]) for count in range(MAX_COMPLETION_TOKENS + 1)]
# A non-streamed answer with %-placeholders for what varies: filling it in costs a fraction of
# json.dumps, and all that goes in is JSON-safe as it is (numbers, known model ids, ASCII words).
_COMPLETION_JSON = (
    '{"id": "%s", "created": %d, "model": "%s", "object": "chat.completion", '
    '"choices": [{"index": 0, "message": {"role": "assistant", "content": "%s"}, "finish_reason": "stop"}], '
    '"usage": {"prompt_tokens": %d, "completion_tokens": %d, "total_tokens": %d}}'
)


def default_state_file(port):
    """Return the state file used when none is given: one per port in the temp directory."""
    return os.path.join(tempfile.gettempdir(), f"fake-openrouter-{port}.json")


class FaultSwitches:
    """Fault settings kept in a JSON file so every worker process sees the same switches.

    A server process runs one thread; nothing here yields to another greenlet midway, so no lock.
    """

    def __init__(self, path):
        """Start from the defaults until the file says otherwise."""
        self.path = path
        self._state = dict(DEFAULT_FAULTS)
        self._file_signature = None
        self._checked_at = float("-inf")

    def current(self):
        """Return the switches, re-reading the file only if it changed and was not checked lately."""
        now = time.monotonic()
        if now - self._checked_at >= RECHECK_SECONDS:
            self._checked_at = now
            try:
                stat = os.stat(self.path)
            except FileNotFoundError:
                self._state, self._file_signature = dict(DEFAULT_FAULTS), None
            else:
                if (stat.st_mtime_ns, stat.st_size) != self._file_signature:
                    self._state = self._read_file()
                    self._file_signature = (stat.st_mtime_ns, stat.st_size)
        return self._state

    def update(self, changes):
        """Merge validated changes into the shared switches and return the result."""
        changes = _validated_faults(changes)
        return self._write({**self._read_file(), **changes})

    def reset(self):
        """Restore every switch to its default."""
        return self._write(dict(DEFAULT_FAULTS))

    def _read_file(self):
        """Return the file's switches over the defaults; an unreadable file means defaults."""
        try:
            with open(self.path, encoding="utf-8") as file:
                return {**DEFAULT_FAULTS, **_validated_faults(json.load(file))}
        except (OSError, ValueError):
            return dict(DEFAULT_FAULTS)

    def _write(self, state):
        """Replace the file atomically (readers never see half a file) and adopt it here at once."""
        directory = os.path.dirname(os.path.abspath(self.path))
        with tempfile.NamedTemporaryFile("w", dir=directory, suffix=".tmp", delete=False) as file:
            json.dump(state, file)
        os.replace(file.name, self.path)
        stat = os.stat(self.path)
        self._state, self._file_signature = state, (stat.st_mtime_ns, stat.st_size)
        self._checked_at = time.monotonic()
        return state


def _validated_faults(changes):
    """Return the changes if every key is a known switch with a value of the right type."""
    if not isinstance(changes, dict):
        raise ValueError("expected a JSON object")
    for key, value in changes.items():
        if key not in DEFAULT_FAULTS:
            raise ValueError(f"unknown switch {key!r}; known: {', '.join(DEFAULT_FAULTS)}")
        if key == "outage" and not isinstance(value, bool):
            raise ValueError("outage must be true or false")
        if key in ("latency_ms", "chunk_delay_ms") and not _is_count(value):
            raise ValueError(f"{key} must be a non-negative integer")
        if key == "status" and value is not None and not (_is_count(value) and 400 <= value <= 599):
            raise ValueError("status must be null or an HTTP error status (400-599)")
    return changes


def _is_count(value):
    """Whether value is a non-negative int (JSON true/false do not count)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


class FakeOpenRouter:
    """The routes: a request's method, path and body in; (status, headers, body) out.

    The body is bytes, or an iterator of str when a stream must go out event by event.
    """

    def __init__(self, state_file):
        """Serve with the fault switches kept in state_file."""
        self.faults = FaultSwitches(state_file)
        self._generation_ids = itertools.count(1)
        self._served = {"completions": 0, "streams": 0}
        self._control_routes = {
            ("GET", "/_control"): lambda body: _json(self.faults.current()),
            ("POST", "/_control"): self._change_faults,
            ("POST", "/_control/reset"): lambda body: _json(self.faults.reset()),
            ("GET", "/_stats"): self._stats,
        }

    def answer(self, method, path, body):
        """Answer one request; API routes pass the fault switches first, control routes never do."""
        control = self._control_routes.get((method, path))
        if control:
            return control(body)
        faults = self.faults.current()
        if faults["latency_ms"]:
            gevent.sleep(faults["latency_ms"] / 1000)
        if faults["outage"]:
            return _error(503, "fake upstream outage")
        if (method, path) == ("POST", "/api/v1/chat/completions"):
            return self._chat_completion(body, faults)
        if (method, path) == ("GET", "/api/v1/models"):
            return 200, JSON_HEADERS, _MODELS_BODY
        return _error(404, f"no route for {method} {path}")

    def _chat_completion(self, body, faults):
        """Answer a chat completion, streamed as SSE when the request asks for it."""
        if faults["status"]:
            retry_after = (("Retry-After", "1"),) if faults["status"] == 429 else ()
            return _error(faults["status"], f"fake upstream forced status {faults['status']}", retry_after)
        request = _parsed_json(body)
        problem = _completion_problem(request)
        if problem:
            return _error(*problem)
        prompt_tokens = _prompt_tokens(request["messages"])
        completion_tokens = min(request.get("max_tokens") or DEFAULT_COMPLETION_TOKENS, MAX_COMPLETION_TOKENS)
        total_tokens = prompt_tokens + completion_tokens
        generation_id = f"gen-fake-{os.getpid()}-{next(self._generation_ids)}"
        created = int(time.time())
        streamed = request.get("stream") is True
        self._served["streams" if streamed else "completions"] += 1
        if not streamed:
            counts = (prompt_tokens, completion_tokens, total_tokens)
            reply = _COMPLETION_JSON % (generation_id, created, request["model"], _REPLIES[completion_tokens], *counts)
            return 200, JSON_HEADERS, reply.encode()
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": total_tokens}
        envelope = {"id": generation_id, "created": created, "model": request["model"]}
        stream_options = request.get("stream_options")
        include_usage = isinstance(stream_options, dict) and stream_options.get("include_usage") is True
        delay_ms = faults["chunk_delay_ms"]
        events = _completion_events(envelope, _WORDS[:completion_tokens], usage if include_usage else None, delay_ms)
        # Without delays the whole stream is one write; with them each event leaves when it is due.
        return 200, SSE_HEADERS, events if delay_ms else "".join(events).encode()

    def _change_faults(self, body):
        """Merge the JSON body into the fault switches."""
        try:
            return _json(self.faults.update(_parsed_json(body)))
        except ValueError as problem:
            return _error(400, str(problem))

    def _stats(self, body):
        """Return how many completions this process has served."""
        counts = self._served
        return _json({"pid": os.getpid(), "completions_served": sum(counts.values()), **counts})


def _json(data, status=200, headers=()):
    """A JSON reply."""
    return status, (*JSON_HEADERS, *headers), json.dumps(data).encode()


def _error(status, message, headers=()):
    """An OpenAI/OpenRouter-style error reply."""
    return _json({"error": {"message": message, "code": status}}, status, headers)


def _parsed_json(body):
    """The body's JSON, or None when it is not JSON."""
    try:
        return json.loads(body)
    except ValueError:
        return None


def _prompt_tokens(messages):
    """Count each message as len(text) // 4 + 4, text being its string content or its text parts."""
    total = 0
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):
            content = "".join(
                part["text"]
                for part in content
                if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)
            )
        total += len(content if isinstance(content, str) else "") // 4 + 4
    return total


def _completion_problem(body):
    """Return why a completion request is invalid, or None."""
    if not isinstance(body, dict):
        return 400, "request body must be a JSON object"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        return 400, "messages is required and must be a non-empty list of objects"
    max_tokens = body.get("max_tokens")
    if max_tokens is not None and not (_is_count(max_tokens) and max_tokens > 0):
        return 400, "max_tokens must be a positive integer"
    if not isinstance(body.get("model"), str):
        return 400, "model is required"
    if body["model"] not in _MODEL_IDS:
        return 404, f"Model {body['model']} not found"
    return None


def _completion_events(envelope, words, usage, chunk_delay_ms):
    """Yield the SSE events of a streamed completion: one chunk per word, then stop, usage, [DONE]."""
    chunk = {**envelope, "object": "chat.completion.chunk"}

    def event(choices, **extra):
        return f"data: {json.dumps({**chunk, 'choices': choices, **extra})}\n\n"

    for index, word in enumerate(words):
        if chunk_delay_ms:
            gevent.sleep(chunk_delay_ms / 1000)
        # Leading spaces after the first word make the deltas concatenate to the full reply.
        delta = {"role": "assistant", "content": word} if index == 0 else {"content": f" {word}"}
        yield event([{"index": 0, "delta": delta, "finish_reason": None}])
    yield event([{"index": 0, "delta": {}, "finish_reason": "stop"}])
    if usage is not None:
        yield event([], usage=usage)
    yield "data: [DONE]\n\n"


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
                _send(sock, *_error(400, str(problem)), keep_alive=False)
                return
            if request is None:
                return
            method, path, body, keep_alive, pending = request
            _send(sock, *fake.answer(method, path, body), keep_alive=keep_alive)
            if not keep_alive:
                return
    except OSError:  # the client went away, or idled past KEEPALIVE_SECONDS
        return
    finally:
        sock.close()


def _read_request(sock, pending):
    """Read one request after the bytes already received.

    Returns (method, path, body, keep_alive, bytes received past it), None if the client closed
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
    return method, target.partition("?")[0], pending[head_end + 4 : body_end], keep_alive, pending[body_end:]


def _send(sock, status, headers, body, keep_alive):
    """Write one response: bytes in a single send with a Content-Length, an iterator chunk by chunk."""
    head = f"HTTP/1.1 {status} {REASONS.get(status, '')}\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in headers)
    if not keep_alive:
        head += "Connection: close\r\n"
    if isinstance(body, bytes):
        sock.sendall(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
        return
    sock.sendall(f"{head}Transfer-Encoding: chunked\r\n\r\n".encode())
    for text in body:
        data = text.encode()
        sock.sendall(b"%x\r\n%s\r\n" % (len(data), data))
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
    """Start the fake server from the command line, resetting its faults first."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--workers", type=int, default=1, help="processes sharing the port (default 1)")
    parser.add_argument("--state-file", help="fault switches file shared by the workers")
    args = parser.parse_args(argv)
    state_file = args.state_file or os.environ.get("FAKE_OPENROUTER_STATE_FILE") or default_state_file(args.port)
    # A previous run's switches (an outage left on by a crashed test) must not leak into this one.
    FaultSwitches(state_file).reset()
    server = FakeOpenRouterServer((args.host, args.port), FakeOpenRouter(state_file))
    print(
        f"fake OpenRouter listening on http://{args.host}:{args.port}/api/v1 "
        f"(workers={args.workers}, state file {state_file})",
        flush=True,
    )
    serve(server, max(args.workers, 1))


if __name__ == "__main__":
    main()
