"""Per-request plumbing: request ids, timing, the access log line, and where audited changes come from."""

import logging
import re
import time
import uuid

from flask import g, has_request_context, request

from ops_gateway.telemetry import audit, metrics, tracing

logger = logging.getLogger("ops_gateway.app")

_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


def start_request():
    """Adopt the caller's X-Request-ID when sane, else mint one; start the clock; count the request in flight."""
    g.started = time.perf_counter()
    incoming = request.headers.get("X-Request-ID", "")
    g.request_id = incoming if _VALID_REQUEST_ID.match(incoming) else uuid.uuid4().hex
    if not g.get("in_flight"):  # counted once, however often the hook runs
        g.in_flight = True
        metrics.HTTP_IN_FLIGHT.inc()
        route = request.url_rule.rule if request.url_rule else "<unmatched>"
        g.span = tracing.start_request(request.method, route, request.headers)


def finish_request(response):
    """Echo the request id and write one access-log line."""
    response.headers["X-Request-ID"] = g.get("request_id", "")
    latency_ms = (time.perf_counter() - g.get("started", time.perf_counter())) * 1000
    g.latency_ms = latency_ms
    route = request.url_rule.rule if request.url_rule else "<unmatched>"
    g.route, g.status_code = route, response.status_code
    metrics.observe_request(request.method, route, response.status_code, latency_ms)
    logger.info(
        "request",
        extra={
            "method": request.method,
            "route": route,
            "path": request.path,
            "status": response.status_code,
            "latency_ms": round(latency_ms, 2),
            "remote_addr": request.remote_addr,
        },
    )
    return response


def end_request(exc=None):
    """teardown_request: the request (or its stream) is over; it is no longer in flight and its
    trace span ends. A streamed response's view returns before its stream: its span ends at the
    teardown after the stream's last event (``streaming`` is set until then)."""
    if g.pop("in_flight", False):
        metrics.HTTP_IN_FLIGHT.dec()
    if not g.get("streaming"):
        tracing.finish_request(g.pop("span", None), g.get("status_code", 500))


def request_origin():
    """The current request's address, user agent and id, for the audit rows it writes."""
    if not has_request_context():
        return audit.NO_ORIGIN
    return audit.Origin(request.remote_addr, request.user_agent.string or None, g.get("request_id"))


def init_app(app):
    """Register the hooks."""
    audit.use_origin_provider(request_origin)
    app.before_request(start_request)
    app.after_request(finish_request)
    app.teardown_request(end_request)
