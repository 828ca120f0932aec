"""The fake's fault switches, shared by its processes.

Outage, latency, a forced status, slow streams; ``fail_next`` (the next ``count`` generation
requests answer ``status``, with ``retry_after`` as their Retry-After when given), so retry tests
can be exact; ``unavailable_models`` (skipped as OpenRouter skips a model that is down, falling
back along the request's ``models``) and ``served_model`` (answers whatever was asked).

Billing switches, so tests can show each way a gateway's books can drift from upstream's:

- ``cost_multiplier`` (a number > 0, default 1): every reported cost (``usage.cost`` of chat,
  embeddings, responses, messages and streams, and the generation record's ``total_cost``) is the
  catalogue price times this factor, as a dearer provider bills; tokens stay the same.
- ``generation_delay_ms`` (default 0): a generation's record (``GET /api/v1/generation``) answers
  404 until this long after the request finished, as OpenRouter persists generations a moment late.
- ``long_answer_tokens`` (null or a positive count up to MAX_LONG_ANSWER_TOKENS): a request that
  gives no output limit is answered with this many tokens, beyond the usual cap, as a model that
  answers long when nothing stops it; a request with a limit still gets at most its limit.
- ``cut_stream_after`` (null or a count): a streamed chat, Responses or Messages call drops its
  connection after this many content chunks (an answer with fewer is not cut), with no finish
  chunk, usage event, ``[DONE]``, ``response.completed`` or ``message_delta``; the generation is
  recorded cancelled, billed for the prompt and the chunks sent.
- ``auto_routes_to`` (a priced chat model, default ``openai/gpt-4o-mini``): the model that answers
  a request for ``openrouter/auto``, named in the reply and billed at its price.

They live in a small JSON state file, so every worker process sees the same switches; a process
re-reads it (when it changed) at most every RECHECK_SECONDS. ``fail_next`` is counted down in the
file under a lock, so across processes exactly ``count`` requests fail once every process has
seen the switch.
"""

import fcntl
import json
import math
import os
import tempfile
import time

from devtools.fake_openrouter.catalogue import CHAT_MODELS, PRICES

DEFAULT_FAULTS = {
    "outage": False,
    "latency_ms": 0,
    "status": None,
    "chunk_delay_ms": 0,
    "fail_next": None,
    "unavailable_models": [],
    "served_model": None,
    "cost_multiplier": 1,
    "generation_delay_ms": 0,
    "long_answer_tokens": None,
    "cut_stream_after": None,
    "auto_routes_to": "openai/gpt-4o-mini",
}
# An answer longer than any model writes, and still quick to send.
MAX_LONG_ANSWER_TOKENS = 262144
# How stale another process's fault switches may be: one stat() per this interval, not per request.
RECHECK_SECONDS = 0.2


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

    def take_forced_failure(self):
        """Consume one of ``fail_next``'s failures: its (status, retry_after), or None when none is left.

        Callers ask only when ``current()`` shows the switch, so requests without it take no lock.
        """
        with open(f"{self.path}.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be taking one at the same moment
            state = self._read_file()
            failure = state["fail_next"]
            if not failure:
                self._adopt(state)
                return None
            remaining = failure["count"] - 1
            self._write({**state, "fail_next": {**failure, "count": remaining} if remaining else None})
        return failure["status"], failure.get("retry_after")

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
        return self._adopt(state)

    def _adopt(self, state):
        """Make state (just read or written) this process's view of the file, as of now."""
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
        if key in ("latency_ms", "chunk_delay_ms") and not is_count(value):
            raise ValueError(f"{key} must be a non-negative integer")
        if key == "status" and value is not None and not is_error_status(value):
            raise ValueError("status must be null or an HTTP error status (400-599)")
        if key == "fail_next" and value is not None and not _is_failure_plan(value):
            raise ValueError(
                'fail_next must be null or {"count": N > 0, "status": 400-599, "retry_after": seconds or HTTP date}'
            )
        if key == "unavailable_models" and not (isinstance(value, list) and all(model in PRICES for model in value)):
            raise ValueError("unavailable_models must be a list of catalogue model ids")
        if key == "served_model" and value is not None and value not in PRICES:
            raise ValueError("served_model must be null or a catalogue model id")
        _check_billing_switch(key, value)
    return changes


def _check_billing_switch(key, value):
    """Raise ValueError if value is not valid for key, when key is one of the billing switches."""
    if key == "cost_multiplier" and not (_is_number(value) and value > 0):
        raise ValueError("cost_multiplier must be a number greater than 0")
    if key == "generation_delay_ms" and not is_count(value):
        raise ValueError("generation_delay_ms must be a non-negative integer")
    if key == "long_answer_tokens" and not (value is None or _is_answer_length(value)):
        raise ValueError(f"long_answer_tokens must be null or an integer from 1 to {MAX_LONG_ANSWER_TOKENS}")
    if key == "cut_stream_after" and value is not None and not is_count(value):
        raise ValueError("cut_stream_after must be null or a non-negative integer (content chunks)")
    if key == "auto_routes_to" and not (isinstance(value, str) and value in PRICES and value in CHAT_MODELS):
        raise ValueError("auto_routes_to must be a priced chat model id")


def _is_answer_length(value):
    """Whether value is a valid long_answer_tokens: a count from 1 to MAX_LONG_ANSWER_TOKENS."""
    return is_count(value) and 0 < value <= MAX_LONG_ANSWER_TOKENS


def _is_number(value):
    """Whether value is a finite JSON number (JSON true/false are not numbers)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_failure_plan(value):
    """Whether value is a valid fail_next switch."""
    if not isinstance(value, dict) or not set(value) <= {"count", "status", "retry_after"}:
        return False
    retry_after = value.get("retry_after")
    return (
        is_count(value.get("count"))
        and value["count"] > 0
        and is_error_status(value.get("status"))
        and (retry_after is None or is_count(retry_after) or isinstance(retry_after, str))
    )


def is_error_status(value):
    """Whether value is an HTTP error status (400-599)."""
    return is_count(value) and 400 <= value <= 599


def is_count(value):
    """Whether value is a non-negative int (JSON true/false do not count)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
