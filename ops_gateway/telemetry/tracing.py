"""OpenTelemetry traces, off unless an OTLP endpoint is set in the standard environment
(``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``; also headers, timeout,
``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_BSP_*``; ``OTEL_SDK_DISABLED=true`` or
``OTEL_TRACES_EXPORTER=none`` turn it off).

Each request gets a server span, continuing the caller's ``traceparent`` when it sends one, and
each upstream call a client span whose context travels upstream in ``traceparent``. Spans are
exported over OTLP/HTTP by a batch processor in the background: the request never waits on the
collector, and a collector that is down costs a log line from the exporter, nothing more. Off,
every function here returns at once.
"""

import logging
import os
from contextlib import contextmanager

from opentelemetry import propagate, trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

logger = logging.getLogger("ops_gateway.telemetry")

_ENDPOINTS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
_tracer = None  # this process's tracer once ``configure`` found an endpoint


def configure(environ=os.environ):
    """Start exporting this process's spans when the environment names an OTLP endpoint (once per
    process: later apps share the exporter); whether tracing is on."""
    global _tracer
    if _tracer is not None:
        return True
    disabled = environ.get("OTEL_SDK_DISABLED", "").lower() == "true" or environ.get("OTEL_TRACES_EXPORTER") == "none"
    if disabled or not any(environ.get(name) for name in _ENDPOINTS):
        return False
    resource = Resource.create({"service.name": environ.get("OTEL_SERVICE_NAME") or "ops-gateway"})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    _tracer = provider.get_tracer("ops_gateway")
    logger.info("exporting traces over OTLP/HTTP")
    return True


def start_request(method, route, headers):
    """A server span for an incoming request, the child of its ``traceparent`` (None: tracing off)."""
    if _tracer is None:
        return None
    parent = propagate.extract(headers)
    return _tracer.start_span(f"{method} {route}", context=parent, kind=SpanKind.SERVER)


def finish_request(span, status_code):
    """End a request's server span with its HTTP status (5xx marks it an error)."""
    if span is None:
        return
    span.set_attribute("http.response.status_code", status_code)
    if status_code >= 500:
        span.set_status(Status(StatusCode.ERROR))
    span.end()


def annotate(span, attributes):
    """Add attributes (None values left out) to a request's span (callers skip a None span, so they
    build no attributes when tracing is off)."""
    span.set_attributes({name: value for name, value in attributes.items() if value is not None})


@contextmanager
def upstream_call(parent, operation, model):
    """A client span around one upstream call, the child of ``parent``; yields (span, the headers
    that carry its context upstream). Off, or without a parent: (None, {})."""
    if _tracer is None or parent is None:
        yield None, {}
        return
    context = trace.set_span_in_context(parent)
    attributes = {"gen_ai.operation.name": operation, "gen_ai.request.model": model, "gen_ai.system": "openrouter"}
    with _tracer.start_as_current_span(
        f"{operation} {model}", context=context, kind=SpanKind.CLIENT, attributes=attributes
    ) as span:
        carrier = {}
        propagate.inject(carrier, context=trace.set_span_in_context(span))
        yield span, carrier
