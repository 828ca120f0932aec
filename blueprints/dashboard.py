"""/dashboard: the operator dashboard's sign-in, overview, model cache and jobs pages (HTML, not in the spec).

Every dashboard blueprint is guarded by ``protect``: the /admin per-IP rate limit and IP blocks,
a signed-in admin (re-checked on each request), a CSRF token on every POST, strict security
headers, and HTML error pages. Actions call the same services as the JSON API, so they land in
the same audit trail with the same actor.
"""

from functools import partial

from flask import Blueprint, current_app, flash, g, redirect, render_template, request, url_for
from werkzeug.exceptions import HTTPException

from blueprints import component_status as dashboard_status
from blueprints import dashboard_format
from blueprints import dashboard_session as dashboard_auth
from blueprints.dashboard_charts import time_chart
from blueprints.envelope import ApiError, response_headers, status_of
from blueprints.guards import limit_admin_blueprint
from ops_gateway.core import db
from ops_gateway.core.errors import GatewayError
from ops_gateway.dashboard import queries as dashboard_queries
from ops_gateway.dashboard import series as dashboard_series
from ops_gateway.dashboard import sessions as dashboard_sessions
from ops_gateway.limits import security
from ops_gateway.observability import system_state, usage_metrics
from ops_gateway.upstream import catalog as model_catalog
from ops_gateway.upstream.failures import UpstreamError
from scheduler import history, runner

blp = Blueprint("dashboard", __name__, url_prefix="/dashboard", template_folder="templates")
dashboard_format.register(blp)

# default-src 'none': no scripts at all; styles only from our own stylesheet (the charts are inline SVG).
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
LOGIN_MESSAGES = {
    401: "That key was not accepted.",
    403: "That key does not belong to an admin, or lacks the admin:read scope.",
    429: "Too many failed attempts from your address; try again later.",
}
RECENT_RUNS = 25


def _guard(public_endpoints):
    """before_request (after the per-IP admin limit): IP block, a signed-in admin whose key's scopes
    allow the method (signing out always is), the CSRF token on POST."""
    security.check_ip_block(request.remote_addr)
    if request.endpoint not in public_endpoints:
        admin = dashboard_auth.current_admin()
        if admin is None:
            dashboard_auth.sign_out()
            target = request.full_path.rstrip("?") if request.method == "GET" else None
            return redirect(url_for("dashboard.login", next=target))
        g.user = admin
        if request.endpoint != "dashboard.logout":
            dashboard_sessions.check_scope(admin, request.method, request.path)
    if request.method == "POST":
        dashboard_auth.check_csrf()
    return None


def _harden(response):
    """after_request: no scripts, no framing, no caching of operator data."""
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Cache-Control"] = "no-store"
    return response


def _error_page(error):
    """Domain and HTTP errors as an HTML page with the same status (and Retry-After when given)."""
    if isinstance(error, HTTPException):
        error = ApiError(error.code or 500, None, error.description)
    status = status_of(error)
    body = render_template("dashboard/error.html", error=error, status=status)
    return body, status, response_headers(error)


def protect(blueprint, public_endpoints=()):
    """Attach the dashboard's guards (the per-IP admin limit first), headers and error pages to a blueprint."""
    limit_admin_blueprint(blueprint)
    blueprint.before_request(partial(_guard, frozenset(public_endpoints)))
    blueprint.after_request(_harden)
    blueprint.register_error_handler(GatewayError, _error_page)
    blueprint.register_error_handler(HTTPException, _error_page)


protect(blp, public_endpoints=("dashboard.login",))


def safe_next(target):
    """Only a path inside the dashboard (never another host) is a place to go back to."""
    if target and target.startswith("/dashboard/") and not target.startswith("//") and "\\" not in target:
        return target
    return url_for("dashboard.overview")


@blp.route("/login", methods=["GET", "POST"])
def login():
    """Sign in with an admin API key (the bootstrap key or an admin user's key)."""
    if request.method != "POST":  # GET, or the HEAD Flask routes here: never a sign-in attempt
        if dashboard_auth.current_admin() is not None:
            return redirect(url_for("dashboard.overview"))
        dashboard_auth.csrf_token()
        return render_template("dashboard/login.html", next=request.args.get("next", ""))
    try:
        dashboard_auth.sign_in(request.form.get("api_key", "").strip())
    except GatewayError as error:
        status = status_of(error)
        if status not in LOGIN_MESSAGES:
            raise
        page = render_template("dashboard/login.html", error=LOGIN_MESSAGES[status], next=request.form.get("next"))
        return page, status, response_headers(error)
    return redirect(safe_next(request.form.get("next")))


@blp.route("/logout", methods=["POST"])
def logout():
    """Sign out (this cookie and any copy of it)."""
    dashboard_auth.sign_out()
    flash("Signed out.", "info")
    return redirect(url_for("dashboard.login"))


def _charts(points):
    """The overview's four SVG charts from the 288 points."""
    return {
        "requests": time_chart(
            points,
            [("requests", "Requests", "series-a", "area"), ("errors", "Errors", "series-bad", "area")],
            "count",
            "Requests and errors per 5 minutes",
        ),
        "latency": time_chart(points, [("p95_ms", "p95", "series-b", "line")], "ms", "p95 latency per 5 minutes"),
        "tokens": time_chart(points, [("tokens", "Tokens", "series-c", "area")], "count", "Tokens per 5 minutes"),
        "cost": time_chart(points, [("cost", "Cost", "series-d", "area")], "money", "Cost per 5 minutes"),
    }


@blp.route("/")
def overview():
    """Health at a glance, the last 24 hours in charts, the response cache's last hour, and the alerts firing now."""
    status = dashboard_status.snapshot()
    with db.transaction() as cur:
        series = dashboard_series.last_24h(cur)
        alerts = system_state.active_alerts(cur)
        response_cache = usage_metrics.response_cache_hits(cur)
    return render_template(
        "dashboard/overview.html",
        status=status,
        totals=dashboard_series.summarise(series["points"]),
        pending=series["pending"],
        charts=_charts(series["points"]),
        alerts=alerts,
        cache=model_catalog.cache_status(),
        response_cache=response_cache,
    )


@blp.route("/models")
def models():
    """The shared model cache: its state and the models it holds."""
    with db.transaction() as cur:
        cached = dashboard_queries.cached_models(cur)
    return render_template("dashboard/models.html", cache=model_catalog.cache_status(), models=cached)


@blp.route("/models/refresh", methods=["POST"])
def refresh_models():
    """Refresh the model list now (as POST /admin/refresh-models); a failure keeps the old list."""
    try:
        result = model_catalog.refresh_models()
    except UpstreamError as error:
        flash(f"Refresh failed: {error.message}. The previous list keeps serving.", "error")
    else:
        flash(f"Refreshed {result['total_models']} models in {result['duration_ms']:.0f} ms.", "success")
    return redirect(url_for("dashboard.models"))


@blp.route("/jobs")
def jobs():
    """Every scheduler job with its schedule and last run, and the most recent runs."""
    with db.transaction() as cur:
        described = history.describe_jobs(cur, current_app.config, 5)
    runs = sorted((run for job in described for run in job["recent_runs"]), key=lambda r: r["started_at"], reverse=True)
    return render_template("dashboard/jobs.html", jobs=described, runs=runs[:RECENT_RUNS])


@blp.route("/jobs/<name>/run", methods=["POST"])
def run_job(name):
    """Run one job now through the clock's lock (as POST /admin/jobs/<name>/run)."""
    run = runner.run_job(name, trigger="dashboard", actor=g.user["actor"])
    if run["status"] == "success":
        flash(f"{name} succeeded in {run['duration_ms']:.0f} ms.", "success")
    elif run["status"] == "skipped":
        flash(f"{name} was skipped: {run['details'].get('reason', 'no reason given')}.", "info")
    else:
        flash(f"{name} failed: {run['error']}", "error")
    return redirect(url_for("dashboard.jobs"))
