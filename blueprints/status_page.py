"""/status and /status/badge.svg: public, unauthenticated service status (components only, no user data)."""

from flask import Blueprint, Response, render_template

from blueprints import component_status as dashboard_status
from blueprints.dashboard_charts import badge

blp = Blueprint("status_page", __name__, template_folder="templates")

CACHE_SECONDS = 30  # what a status badge proxy or CDN may reuse


def _cached(response):
    """Let a badge proxy or CDN reuse the answer briefly."""
    response.headers["Cache-Control"] = f"public, max-age={CACHE_SECONDS}"
    return response


@blp.route("/status")
def status():
    """Overall status and each component's, refreshed by the page every minute."""
    snapshot = dashboard_status.snapshot()
    page = render_template("dashboard/status.html", snapshot=snapshot)
    response = Response(page, status=503 if snapshot["overall"] == "outage" else 200, mimetype="text/html")
    response.headers["Content-Security-Policy"] = "default-src 'none'; style-src 'self'; frame-ancestors 'none'"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return _cached(response)


@blp.route("/status/badge.svg")
def status_badge():
    """A shields-style badge of the overall status, for READMEs and wikis."""
    overall = dashboard_status.snapshot()["overall"]
    response = Response(badge("status", overall, overall), mimetype="image/svg+xml")
    response.headers["X-Content-Type-Options"] = "nosniff"
    return _cached(response)
