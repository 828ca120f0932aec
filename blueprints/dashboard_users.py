"""/dashboard/users: find users; one user's credits, plan, budgets, keys, effective limits and latest audit entries.

Read-only pages: the forms on the user page post to ``dashboard_user_actions`` and ``dashboard_keys``.
"""

from flask import Blueprint, redirect, render_template, request, url_for

from blueprints.dashboard import protect
from blueprints.dashboard_keys import GRACE_CHOICES
from blueprints.query_args import page_number, whole_number
from ops_gateway.accounts import api_keys, orgs, users
from ops_gateway.billing import budgets
from ops_gateway.core import db
from ops_gateway.core.errors import GatewayError
from ops_gateway.limits import limit_overrides, window_caps
from ops_gateway.limits.windows import LIMIT_FIELDS
from ops_gateway.telemetry import audit

blp = Blueprint("dashboard_users", __name__, url_prefix="/dashboard/users", template_folder="templates")
protect(blp)

PAGE_SIZE = 25
RECENT_AUDIT = 10
KEY_ROWS = 50  # newest first; revoked and rotated keys pile up, and the API pages the rest
STATUSES = ("active", "suspended")


@blp.route("")
def index():
    """Users whose email contains the search text (a number jumps to that user id)."""
    query = request.args.get("q", "").strip()[:200]
    status = request.args.get("status") if request.args.get("status") in STATUSES else None
    page = page_number(request.args.get("page"))
    with db.transaction() as cur:
        if (user_id := whole_number(query)) is not None:
            try:
                return redirect(url_for("dashboard_users.detail", user_id=users.get_user(cur, user_id)["id"]))
            except GatewayError:
                pass  # no such id: search emails for the digits instead
        total, rows = users.list_users(cur, query or None, status, (page - 1) * PAGE_SIZE, PAGE_SIZE)
    pages = max((total + PAGE_SIZE - 1) // PAGE_SIZE, 1)
    return render_template(
        "dashboard/users.html", users=rows, total=total, page=page, pages=pages, query=query, status=status
    )


@blp.route("/<int:user_id>")
def detail(user_id):
    """One user: balance, plan, spend caps, keys (masked), effective limits with their source and the
    windows a longer one caps (as POST /admin/limit warns), latest audit entries."""
    with db.transaction() as cur:
        user = users.get_user(cur, user_id)
        limits, sources, _ = limit_overrides.effective_for_user(cur, user_id)
        plans = limit_overrides.list_plans(cur)
        _, recent = audit.query_logs(cur, user_id=user_id, limit=RECENT_AUDIT, count=False)
        caps = budgets.caps_of_user(cur, user_id)
        keys = api_keys.list_keys(cur, user_id, KEY_ROWS)
        memberships = orgs.memberships(cur, user_id)
    windows = [{"field": f, "value": limits[f], "source": sources[f]} for f in LIMIT_FIELDS]
    return render_template(
        "dashboard/user.html",
        user=user,
        windows=windows,
        plans=plans,
        recent=recent,
        budgets=caps,
        keys=keys,
        memberships=memberships,
        key_limit=KEY_ROWS,
        grace_choices=GRACE_CHOICES,
        capped=window_caps.capped_windows(limits),
    )
