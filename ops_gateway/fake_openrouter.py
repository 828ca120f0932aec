"""A fake OpenRouter for development, end-to-end tests and benchmarks.

Answers are deterministic (same request, same usage and text) and cheap to produce, because
benchmarks use this server as the "direct" baseline. Faults (outage, latency, forced status,
slow streams) are switched at run time through ``/_control`` and shared between worker
processes through a small JSON state file.

Run it with ``python -m ops_gateway.fake_openrouter [--host H] [--port P] [--workers N]``.
"""

import argparse
import itertools
import json
import logging
import os
import tempfile
import threading
import time

from flask import Flask, Response, g, jsonify, request
from gunicorn.app.base import BaseApplication
from werkzeug.serving import run_simple

DEFAULT_PORT = 8099
DEFAULT_FAULTS = {"outage": False, "latency_ms": 0, "status": None, "chunk_delay_ms": 0}
# How stale another process's fault switches may be: one stat() per this interval, not per request.
RECHECK_SECONDS = 0.2
MAX_COMPLETION_TOKENS = 16

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
_MODELS_BODY = json.dumps({"data": MODELS})


def default_state_file(port):
    """Return the state file used when none is given: one per port in the temp directory."""
    return os.path.join(tempfile.gettempdir(), f"fake-openrouter-{port}.json")


class FaultSwitches:
    """Fault settings kept in a JSON file so every worker process sees the same switches."""

    def __init__(self, path):
        """Start from the defaults until the file says otherwise."""
        self.path = path
        self._state = dict(DEFAULT_FAULTS)
        self._file_signature = None
        self._checked_at = float("-inf")
        self._write_lock = threading.Lock()

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
        with self._write_lock:
            return self._write({**self._read_file(), **changes})

    def reset(self):
        """Restore every switch to its default."""
        with self._write_lock:
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


def _error(status, message):
    """Build an OpenAI/OpenRouter-style error response."""
    return jsonify({"error": {"message": message, "code": status}}), status


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


def create_fake_app(state_file=None):
    """Build the fake OpenRouter app; faults live in state_file (or $FAKE_OPENROUTER_STATE_FILE)."""
    app = Flask(__name__)
    faults = FaultSwitches(
        state_file or os.environ.get("FAKE_OPENROUTER_STATE_FILE") or default_state_file(DEFAULT_PORT)
    )
    generation_ids = itertools.count(1)
    served = {"completions": 0, "streams": 0}
    served_lock = threading.Lock()

    @app.before_request
    def apply_faults():
        """Delay or refuse API requests as the switches say; control routes stay reachable."""
        if request.path.startswith("/_"):
            return None
        g.faults = faults.current()
        if g.faults["latency_ms"]:
            time.sleep(g.faults["latency_ms"] / 1000)
        if g.faults["outage"]:
            return _error(503, "fake upstream outage")
        return None

    @app.get("/api/v1/models")
    def list_models():
        """Return the fixed model catalogue."""
        return Response(_MODELS_BODY, mimetype="application/json")

    @app.post("/api/v1/chat/completions")
    def chat_completions():
        """Answer a chat completion, streamed as SSE when the request asks for it."""
        if g.faults["status"]:
            response, status = _error(g.faults["status"], f"fake upstream forced status {g.faults['status']}")
            if status == 429:
                response.headers["Retry-After"] = "1"
            return response, status
        body = request.get_json(silent=True)
        problem = _completion_problem(body)
        if problem:
            return _error(*problem)
        prompt_tokens = _prompt_tokens(body["messages"])
        completion_tokens = min(body.get("max_tokens") or MAX_COMPLETION_TOKENS, MAX_COMPLETION_TOKENS)
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        words = [f"word{i}" for i in range(completion_tokens)]
        envelope = {
            "id": f"gen-fake-{os.getpid()}-{next(generation_ids)}",
            "created": int(time.time()),
            "model": body["model"],
        }
        streamed = body.get("stream") is True
        with served_lock:
            served["streams" if streamed else "completions"] += 1
        if not streamed:
            message = {"role": "assistant", "content": " ".join(words)}
            return jsonify(
                {
                    **envelope,
                    "object": "chat.completion",
                    "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                    "usage": usage,
                }
            )
        stream_options = body.get("stream_options")
        include_usage = isinstance(stream_options, dict) and stream_options.get("include_usage") is True
        events = _completion_events(envelope, words, usage if include_usage else None, g.faults["chunk_delay_ms"])
        return Response(events, mimetype="text/event-stream", headers={"Cache-Control": "no-cache"})

    @app.get("/_control")
    def show_faults():
        """Return the current fault switches."""
        return jsonify(faults.current())

    @app.post("/_control")
    def change_faults():
        """Merge the JSON body into the fault switches."""
        try:
            return jsonify(faults.update(request.get_json(silent=True)))
        except ValueError as problem:
            return _error(400, str(problem))

    @app.post("/_control/reset")
    def reset_faults():
        """Switch every fault off."""
        return jsonify(faults.reset())

    @app.get("/_stats")
    def stats():
        """Return how many completions this process has served."""
        with served_lock:
            counts = dict(served)
        return jsonify({"pid": os.getpid(), "completions_served": sum(counts.values()), **counts})

    return app


def _completion_events(envelope, words, usage, chunk_delay_ms):
    """Yield the SSE events of a streamed completion: one chunk per word, then stop, usage, [DONE]."""
    chunk = {**envelope, "object": "chat.completion.chunk"}

    def event(choices, **extra):
        return f"data: {json.dumps({**chunk, 'choices': choices, **extra})}\n\n"

    for index, word in enumerate(words):
        if chunk_delay_ms:
            time.sleep(chunk_delay_ms / 1000)
        # Leading spaces after the first word make the deltas concatenate to the full reply.
        delta = {"role": "assistant", "content": word} if index == 0 else {"content": f" {word}"}
        yield event([{"index": 0, "delta": delta, "finish_reason": None}])
    yield event([{"index": 0, "delta": {}, "finish_reason": "stop"}])
    if usage is not None:
        yield event([], usage=usage)
    yield "data: [DONE]\n\n"


def main(argv=None):
    """Start the fake server from the command line, resetting its faults first."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--workers", type=int, default=1, help="more than 1 runs under gunicorn (gthread)")
    parser.add_argument("--state-file", help="fault switches file shared by the workers")
    args = parser.parse_args(argv)
    state_file = args.state_file or os.environ.get("FAKE_OPENROUTER_STATE_FILE") or default_state_file(args.port)
    # A previous run's switches (an outage left on by a crashed test) must not leak into this one.
    FaultSwitches(state_file).reset()
    app = create_fake_app(state_file)
    print(
        f"fake OpenRouter listening on http://{args.host}:{args.port}/api/v1 "
        f"(workers={args.workers}, state file {state_file})",
        flush=True,
    )
    if args.workers > 1:
        _serve_with_gunicorn(app, args.host, args.port, args.workers)
    else:
        # Per-request access lines would cost more than the answers themselves.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        run_simple(args.host, args.port, app, threaded=True)


def _serve_with_gunicorn(app, host, port, workers):
    """Serve app with gunicorn's threaded workers, configured in code."""

    class FakeOpenRouterServer(BaseApplication):
        """gunicorn application whose settings come from this function, not a config file."""

        def load_config(self):
            """Apply the fixed settings."""
            options = {
                "bind": f"{host}:{port}",
                "workers": workers,
                "worker_class": "gthread",
                "threads": 8,
                # Longer than a client pool's idle time, so reused connections are not cut mid-request.
                "keepalive": 75,
                "loglevel": "warning",
            }
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self):
            """Hand every worker the same app."""
            return app

    FakeOpenRouterServer().run()


if __name__ == "__main__":
    main()
