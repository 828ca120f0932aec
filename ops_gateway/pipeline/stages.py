"""Where one /v1 request's time went, stage by stage, sent as its ``Server-Timing`` header.

Each mark closes a stage that began at the previous mark (the first at the request's arrival), so
the stages add up to the time the request had spent when the header was written. ``bench`` reads
them to show where a change moved the gateway's time.
"""

import time


class StageClock:
    """The durations of a request's stages so far, in milliseconds."""

    def __init__(self, started):
        """``started``: time.perf_counter() at the request's arrival."""
        self._last = started
        self.durations = []

    def mark(self, stage):
        """The stage named ``stage`` ends now."""
        now = time.perf_counter()
        self.durations.append((stage, (now - self._last) * 1000))
        self._last = now

    def header(self):
        """The ``Server-Timing`` value: ``parse;dur=0.31, auth;dur=0.52, ...``."""
        return ", ".join(f"{stage};dur={ms:.2f}" for stage, ms in self.durations)
