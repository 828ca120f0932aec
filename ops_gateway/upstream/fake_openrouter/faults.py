"""The fake's fault switches, shared by its processes.

Outage, latency, a forced status, slow streams; ``fail_next`` (the next ``count`` generation
requests answer ``status``, with ``retry_after`` as their Retry-After when given), so retry tests
can be exact; ``unavailable_models`` (skipped as OpenRouter skips a model that is down, falling
back along the request's ``models``) and ``served_model`` (answers whatever was asked).

They live in a small JSON state file, so every worker process sees the same switches; a process
re-reads it (when it changed) at most every RECHECK_SECONDS. ``fail_next`` is counted down in the
file under a lock, so across processes exactly ``count`` requests fail once every process has
seen the switch.
"""

import fcntl
import json
import os
import tempfile
import time

from ops_gateway.upstream.fake_openrouter.catalogue import PRICES

DEFAULT_FAULTS = {
    "outage": False,
    "latency_ms": 0,
    "status": None,
    "chunk_delay_ms": 0,
    "fail_next": None,
    "unavailable_models": [],
    "served_model": None,
}
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
    return changes


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
