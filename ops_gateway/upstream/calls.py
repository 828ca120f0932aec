"""What one call to OpenRouter did: its attempts and status, reported in one log line on
``ops_gateway.openrouter`` and to the client's ``on_call`` hook when it ends, and each retry's
outcome to ``on_retry``. A failing hook never fails the call."""

import logging
import time

logger = logging.getLogger("ops_gateway.openrouter")


class UpstreamCall:
    """One public call of the client, from its first attempt to its end."""

    def __init__(self, method, path, query="", headers=None):
        self.method = method
        self.path = path  # what logs and metrics name the call by
        self.query = query  # already quoted; kept out of the path's labels
        self.headers = headers  # besides the session's (the Messages API's version and betas)
        self.started = time.perf_counter()
        self.attempts = 0
        self.status = None
        self.retry_causes = []

    def retried(self, outcome, on_retry):
        """Report a retry's outcome once its attempt has an answer (first attempts are not retries)."""
        if self.attempts > 1:
            self.notify_retry(outcome, on_retry)

    def notify_retry(self, outcome, on_retry):
        """Tell the on_retry hook."""
        if on_retry is not None:
            try:
                on_retry(self.path, outcome)
            except Exception:
                logger.exception("on_retry hook failed for %s %s", self.method, self.path)

    def finish(self, on_call, error=None):
        """Log the call's one line and notify the on_call hook."""
        latency_ms = round((time.perf_counter() - self.started) * 1000, 1)
        ok = error is None
        log = logger.info if ok else logger.warning
        log(
            "upstream %s %s -> %s",
            self.method,
            self.path,
            self.status if ok else error.kind,
            extra={
                "upstream_method": self.method,
                "upstream_path": self.path,
                "upstream_status": self.status,
                "latency_ms": latency_ms,
                "attempts": self.attempts,
                "retry_causes": self.retry_causes,
                "error_kind": None if ok else error.kind,
            },
        )
        if on_call is not None:
            try:
                on_call(self.path, self.status, latency_ms, ok)
            except Exception:
                # Metrics are a side channel: their failure must never fail a user's request.
                logger.exception("on_call hook failed for %s %s", self.method, self.path)
