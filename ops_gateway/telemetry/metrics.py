"""Prometheus metrics: every metric object of the gateway, the one-line recorders and the exposition.

Metrics are per process; under gunicorn set PROMETHEUS_MULTIPROC_DIR (gunicorn.conf.py clears it
at start and marks dead workers) and ``/metrics`` merges every worker's files. Gauges sum the
live processes. The directory is made here if missing: a platform sets the variable for every
process type (app.json), and the release and clock processes start without gunicorn.
Instrumented code calls the small recorders below, one line at the point where the thing happens.
"""

import os

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)

from ops_gateway.core.db import get_database

disable_created_metrics()  # the *_created series only double the output
if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)  # before the first metric

# Seconds; LLM completions take seconds to a minute, the rest of the API milliseconds.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 60, 120)

HTTP_REQUESTS = Counter("gateway_http_requests_total", "HTTP requests served", ["method", "route", "status"])
HTTP_LATENCY = Histogram(
    "gateway_http_request_duration_seconds",
    "Time to the response (streams: to the first byte)",
    ["method", "route", "status"],
    buckets=LATENCY_BUCKETS,
)
HTTP_IN_FLIGHT = Gauge("gateway_http_requests_in_flight", "Requests being served", multiprocess_mode="livesum")
UPSTREAM_CALLS = Counter(
    "gateway_upstream_calls_total",
    "OpenRouter HTTP calls (outcome error: failed, whatever the status)",
    ["endpoint", "status", "outcome"],
)
UPSTREAM_RETRIES = Counter(
    "gateway_upstream_retries_total",
    "OpenRouter calls repeated after 429/502/503 or a connection never made: the retried attempt's "
    "outcome (succeeded, failed), or skipped_deadline when the wait would pass the call's deadline",
    ["endpoint", "outcome"],
)
UPSTREAM_CALL_LATENCY = Histogram(
    "gateway_upstream_call_duration_seconds", "OpenRouter call time", ["endpoint"], buckets=LATENCY_BUCKETS
)
UPSTREAM_REQUESTS = Counter(
    "gateway_upstream_requests_total", "Completions sent upstream, by model and upstream status", ["model", "status"]
)
UPSTREAM_LATENCY = Histogram(
    "gateway_upstream_request_duration_seconds",
    "Upstream time of a completion (streams: until the last event)",
    ["model", "status"],
    buckets=LATENCY_BUCKETS,
)
TOKENS = Counter("gateway_tokens_total", "Tokens charged", ["model", "kind"])
COST = Counter("gateway_cost_usd_total", "Priced cost of completions in USD", ["model"])
CREDITS_CHARGED = Counter("gateway_credits_charged_usd_total", "Credits debited from users in USD", ["model"])
UPSTREAM_REPORTED_COST = Counter(
    "gateway_upstream_reported_cost_usd_total", "Cost upstream reported for completions, in USD", ["model"]
)
UPSTREAM_COST_DRIFT = Counter(
    "gateway_upstream_cost_drift_usd_total",
    "How far our charge was from upstream's reported cost, in USD, by which side was higher",
    ["higher"],
)
RATE_LIMIT_REJECTIONS = Counter("gateway_rate_limit_rejections_total", "Requests refused with 429", ["window"])
AUTH_FAILURES = Counter("gateway_auth_failures_total", "Failed authentications", ["reason"])
CACHE_LOOKUPS = Counter("gateway_model_cache_lookups_total", "Model cache lookups", ["result"])
RESPONSE_CACHE = Counter(
    "gateway_response_cache_lookups_total", "Response cache lookups (hit, miss) and answers too big to keep", ["result"]
)
RESPONSE_CACHE_BYTES = Counter("gateway_response_cache_stored_bytes_total", "Bytes written to the response cache")
CACHE_REFRESHES = Counter("gateway_model_cache_refreshes_total", "Model list refreshes", ["outcome"])
DB_POOL_IN_USE = Gauge("gateway_db_pool_connections_in_use", "Pooled connections borrowed", multiprocess_mode="livesum")
DB_SLOW_QUERIES = Counter("gateway_db_slow_queries_total", "Statements slower than SLOW_QUERY_MS")
DB_POOL_EXHAUSTED = Counter(
    "gateway_db_pool_exhausted_total", "Requests refused (503) after DB_POOL_TIMEOUT_SECONDS without a connection"
)
UPSTREAM_IN_FLIGHT = Gauge(
    "gateway_upstream_calls_in_flight", "Completions holding an upstream slot", multiprocess_mode="livesum"
)
UPSTREAM_SLOT_REFUSALS = Counter(
    "gateway_upstream_capacity_rejections_total", "Completions refused (503) at UPSTREAM_MAX_CONCURRENCY"
)


def observe_request(method, route, status, latency_ms):
    """after_request: count and time the response; sample this process's pool."""
    HTTP_REQUESTS.labels(method, route, str(status)).inc()
    HTTP_LATENCY.labels(method, route, str(status)).observe(latency_ms / 1000)
    DB_POOL_IN_USE.set(get_database().stats()["pool_in_use"])


def observe_upstream_call(endpoint, status, latency_ms, ok):
    """OpenRouterClient's on_call hook: one OpenRouter HTTP call finished."""
    UPSTREAM_CALLS.labels(endpoint, str(status) if status else "no_response", "ok" if ok else "error").inc()
    UPSTREAM_CALL_LATENCY.labels(endpoint).observe(latency_ms / 1000)


def observe_upstream_retry(endpoint, outcome):
    """OpenRouterClient's on_retry hook: a retry ended (succeeded, failed) or was skipped_deadline."""
    UPSTREAM_RETRIES.labels(endpoint, outcome).inc()


def observe_completion(finished, charged):
    """A completion was settled (``finished``: its ``billing.settlement.FinishedRequest``): upstream
    outcome, tokens, cost, credits charged and upstream's own cost, by the model billed."""
    model = finished.served_model or finished.model
    upstream_status, upstream_latency_ms = finished.upstream_status, finished.upstream_latency_ms
    cost, upstream_cost = finished.cost, finished.upstream_cost
    status = str(upstream_status) if upstream_status else "no_response"
    UPSTREAM_REQUESTS.labels(model, status).inc()
    if upstream_latency_ms is not None:
        UPSTREAM_LATENCY.labels(model, status).observe(upstream_latency_ms / 1000)
    TOKENS.labels(model, "prompt").inc(finished.prompt_tokens)
    TOKENS.labels(model, "completion").inc(finished.completion_tokens)
    COST.labels(model).inc(float(cost))
    CREDITS_CHARGED.labels(model).inc(float(charged))
    if upstream_cost is not None:
        UPSTREAM_REPORTED_COST.labels(model).inc(float(upstream_cost))
        if charged != upstream_cost:
            higher = "gateway" if charged > upstream_cost else "upstream"
            UPSTREAM_COST_DRIFT.labels(higher).inc(float(abs(charged - upstream_cost)))


def render():
    """The exposition text: every worker's metrics in multiprocess mode, else this process's."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest(REGISTRY)
