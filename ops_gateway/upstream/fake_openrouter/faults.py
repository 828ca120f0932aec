"""The fake's fault switches: outage, latency, forced status and slow streams, shared by its processes.

They live in a small JSON state file, so every worker process sees the same switches; a process
re-reads it (when it changed) at most every RECHECK_SECONDS.
"""

import json
import os
import tempfile
import time

DEFAULT_FAULTS = {"outage": False, "latency_ms": 0, "status": None, "chunk_delay_ms": 0}
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
        if key in ("latency_ms", "chunk_delay_ms") and not is_count(value):
            raise ValueError(f"{key} must be a non-negative integer")
        if key == "status" and value is not None and not (is_count(value) and 400 <= value <= 599):
            raise ValueError("status must be null or an HTTP error status (400-599)")
    return changes


def is_count(value):
    """Whether value is a non-negative int (JSON true/false do not count)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
