"""/dashboard/requests: the request log (every settled /v1 request), filtered and paged, and one entry in full.

The filters are GET /admin/requests's: the same schema validates them and the same page function
reads them, so the page and the API never disagree about what a filter means.
"""

import marshmallow as ma
from flask import Blueprint, render_template, request

from blueprints.dashboard import protect
from blueprints.envelope import status_of
from blueprints.request_log import request_page
from blueprints.request_log_schemas import AdminRequestLogArgsSchema
from ops_gateway.core import db
from ops_gateway.core.errors import GatewayError
from ops_gateway.observability import request_log

blp = Blueprint("dashboard_requests", __name__, url_prefix="/dashboard/requests", template_folder="templates")
protect(blp)

PAGE_SIZE = 50
# The filter form, in order: each query argument as the API names it, and its label.
FILTER_FIELDS = (
    ("user_id", "User id"),
    ("org_id", "Org id"),
    ("key_id", "Key id"),
    ("model", "Model"),
    ("endpoint", "Endpoint"),
    ("status", "Status"),
    ("tag", "Tag"),
    ("ip", "IP address"),
    ("min_latency_ms", "Min latency ms"),
    ("start_date", "From (UTC)"),
    ("end_date", "To (UTC)"),
)
LABELS = dict(FILTER_FIELDS)
# Arguments the page sets itself rather than carrying over: the page size, and the cursor of each link.
_NOT_FILTERS = ("limit", "cursor")
# As flask-smorest loads query strings: arguments the schema does not know are ignored.
_SCHEMA = AdminRequestLogArgsSchema(unknown=ma.EXCLUDE)


def _choices(name):
    """The values the API schema accepts for ``name`` (its OneOf validator), offered as a select."""
    return next(rule.choices for rule in _SCHEMA.fields[name].validators if isinstance(rule, ma.validate.OneOf))


CHOICES = {name: _choices(name) for name in ("endpoint", "status")}


def _query(args):
    """The filled-in filters and cursor loaded by the API's schema, with this page's size (a form sends
    every field, so a blank one means "any")."""
    given = {name: value.strip() for name, value in args.items() if name != "limit" and value.strip()}
    return {**_SCHEMA.load(given), "limit": PAGE_SIZE}


def _describe(messages):
    """A schema's errors as one sentence naming each field by its label."""
    return "; ".join(f"{LABELS.get(name, name)}: {' '.join(problems)}" for name, problems in messages.items())


@blp.route("")
def index():
    """Settled requests, newest first, 50 at a time; a bad filter is named on the page (400)."""
    page, problem = {"requests": [], "next_cursor": None}, None
    try:
        page = request_page(_query(request.args))
    except ma.ValidationError as error:
        problem = _describe(error.messages)
    except GatewayError as error:  # a date that is not one, an inverted range, a stale page link
        if status_of(error) != 400:
            raise
        problem = error.message
    filters = {name: value for name, value in request.args.items() if name not in _NOT_FILTERS and value.strip()}
    body = render_template(
        "dashboard/requests.html",
        rows=page["requests"],
        next_cursor=page["next_cursor"],
        args=filters,
        problem=problem,
        fields=FILTER_FIELDS,
        choices=CHOICES,
    )
    return body, 400 if problem else 200


@blp.route("/<request_id>")
def detail(request_id):
    """The newest request sent with this X-Request-ID, every recorded field, and how many share the id."""
    with db.transaction() as cur:
        entry = request_log.entry(cur, request_id)
    return render_template("dashboard/request.html", entry=entry)
