"""A cap on concurrent upstream calls per instance, so no burst can exhaust the shared OpenRouter key.

``UPSTREAM_MAX_CONCURRENCY`` is split evenly over the instance's ``WEB_CONCURRENCY`` worker
processes; each keeps its share in a semaphore (cooperative under gevent). A request over the cap
waits up to ``UPSTREAM_QUEUE_SECONDS`` for a slot, then gets 503 ``upstream_busy``. The slot is
held from admission until upstream's answer (or the stream) ends, whatever the model costs.
"""

import math
import threading

from flask import current_app

from ops_gateway.core.errors import Unavailable
from ops_gateway.telemetry import metrics


class UpstreamSlots:
    """This process's share of the instance's upstream calls."""

    def __init__(self, per_process, wait_seconds):
        self.per_process = per_process
        self.wait_seconds = wait_seconds
        self._semaphore = threading.BoundedSemaphore(per_process)

    def acquire(self):
        """A held Slot, or ``Unavailable`` (upstream_busy) after waiting ``wait_seconds``."""
        if not self._semaphore.acquire(timeout=self.wait_seconds):
            metrics.UPSTREAM_SLOT_REFUSALS.inc()
            raise Unavailable(
                "the gateway is at its limit of concurrent upstream calls; retry shortly",
                {"max_concurrency": current_app.config["UPSTREAM_MAX_CONCURRENCY"]},
                code="upstream_busy",
                headers={"Retry-After": "1"},
            )
        metrics.UPSTREAM_IN_FLIGHT.inc()
        return Slot(self)

    def _release(self):
        metrics.UPSTREAM_IN_FLIGHT.dec()
        self._semaphore.release()


class Slot:
    """One held slot; ``release`` is safe to call more than once."""

    def __init__(self, slots):
        self._slots = slots

    def release(self):
        """Give the slot back (once)."""
        slots, self._slots = self._slots, None
        if slots is not None:
            slots._release()


def acquire():
    """Hold one of the app's upstream slots for the current request."""
    return current_app.extensions["ops_gateway.upstream_slots"].acquire()


def init_app(app):
    """Give the app this process's share of the instance's cap."""
    share = math.ceil(app.config["UPSTREAM_MAX_CONCURRENCY"] / max(app.config["WEB_CONCURRENCY"], 1))
    app.extensions["ops_gateway.upstream_slots"] = UpstreamSlots(share, app.config["UPSTREAM_QUEUE_SECONDS"])
