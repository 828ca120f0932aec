"""/metrics: Prometheus exposition, optionally behind a bearer token (METRICS_TOKEN)."""

import hmac

from flask import Response, current_app, request
from flask_smorest import Blueprint
from prometheus_client import CONTENT_TYPE_LATEST

from blueprints.docs import METRICS_TOKEN, documents_errors
from blueprints.envelope import ApiError
from ops_gateway.telemetry import metrics

blp = Blueprint(
    "metrics",
    __name__,
    url_prefix="/metrics",
    description="Prometheus metrics for scraping (METRICS_TOKEN when one is set)",
)


@blp.route("")
@blp.doc(**METRICS_TOKEN)
@blp.doc(
    responses={
        "200": {
            "description": "Prometheus text exposition format (all gunicorn workers in multiprocess mode)",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    }
)
@documents_errors(blp, 401)
def prometheus_metrics():
    """Every gateway metric in Prometheus text format; needs the bearer METRICS_TOKEN when one is set."""
    token = current_app.config["METRICS_TOKEN"]
    if token:
        scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(presented.strip().encode(), token.encode()):
            raise ApiError(401, "unauthorized", "a metrics token is required: Authorization: Bearer <METRICS_TOKEN>")
    return Response(metrics.render(), content_type=CONTENT_TYPE_LATEST)
