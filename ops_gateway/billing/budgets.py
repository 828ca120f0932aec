"""Spend caps on users, keys, orgs and org members: a budget per UTC day, week, month or for
good, enforced with the credit hold and announced at thresholds once per period. A personal key
counts against its user's cap and its own; an org key against its org's, its member's org cap
and its own.

A request whose worst case would take the period's spend plus the holds in flight past a cap is
refused (402 ``budget_exceeded``) before upstream, exactly across workers and instances: the
hold locks the rows the caps live on (``budget_queries``). The settlement adds the real cost to
each cap's spend in its one statement; crossing a threshold then fires an alert (a row in
/admin/alerts) and writes an event in the key's audit log, once per period. Its webhook message
goes out from the evaluate_alerts job, within a minute, so a slow webhook never delays a request.
"""

import logging
from decimal import Decimal

from flask import current_app

from ops_gateway.billing import budget_queries, credits
from ops_gateway.billing.money import format_money
from ops_gateway.core import db
from ops_gateway.core.errors import Invalid, PaymentRequired
from ops_gateway.telemetry import alerts, audit

logger = logging.getLogger("ops_gateway.billing")

PERIODS = ("daily", "weekly", "monthly", "never")
FIELDS = ("budget", "budget_period", "budget_alert_thresholds")
SCOPES = ("user", "key")  # the caps a personal key's hold checks (its locked row's column prefixes)
ORG_SCOPES = ("org", "member", "key")  # an org key's


def hold(cur, principal, amount, request_id, hold_seconds):
    """Hold ``amount`` for a caller with a cap or an org key, in one statement on ``cur``; (held, hold_id).

    Not held (False) when the balance cannot cover it (or the key's user left its org); 402
    ``budget_exceeded`` when a cap cannot.
    """
    org_id = principal.get("org_id")
    params = {
        "user_id": principal["user_id"],
        "api_key_id": principal["api_key_id"],
        "org_id": org_id,
        "request_id": request_id,
        "amount": amount,
        "hold_seconds": hold_seconds,
    }
    row = budget_queries.hold(cur, params)
    if row is None or row["held"]:
        return bool(row), row and row["hold_id"]
    if row["credits"] - row["reserved_credits"] < amount:
        return False, None
    for scope in SCOPES if org_id is None else ORG_SCOPES:
        prefix = f"{scope}_"
        budget = row[f"{prefix}budget"]
        spent, reserved = row[f"{prefix}budget_spent"], row[f"{prefix}budget_reserved"]
        if budget is not None and spent + reserved + amount > budget:
            resets_at = row[f"{prefix}budget_resets_at"]
            details = {
                "scope": scope,
                "budget": format_money(budget),
                "period": row[f"{prefix}budget_period"],
                "spent": format_money(spent),
                "reserved": format_money(reserved),
                "required": format_money(amount),
                "resets_at": resets_at.isoformat() if resets_at else None,
            }
            raise PaymentRequired(f"this request could exceed the {scope}'s budget", details, code="budget_exceeded")
    return False, None


def hold_for_request(principal, amount, request_id):
    """``hold`` as a statement of its own (it commits by itself: the rows' locks last that long) for a
    request's lifetime: (held, hold_id, the cap's 402 or None)."""
    lifetime = credits.hold_lifetime_seconds(current_app.config)
    try:
        with db.statement() as cur:
            held, hold_id = hold(cur, principal, amount, request_id, lifetime)
    except PaymentRequired as refusal:
        return False, None, refusal
    return held, hold_id, None


def status(cur, principal):
    """Each cap that applies to the caller's key: its scope, budget, period, spend, holds and reset time."""
    caps = []
    if principal.get("org_id"):
        owners = (("org", principal["org_id"]), ("member", principal["member_id"]), ("key", principal["api_key_id"]))
    else:
        owners = (("user", principal["user_id"]), ("key", principal["api_key_id"]))
    for scope, owner_id in owners:
        row = budget_queries.figures(cur, scope, owner_id)
        if row and row["budget"] is not None:
            caps.append({"scope": scope, **row})
    return caps


def caps_of_user(cur, user_id):
    """The user's cap and each of their keys' caps, as they stand this period."""
    return budget_queries.caps_of_user(cur, user_id)


_CEILING_ERRORS = {  # the scope a cap must stay within: the 422's code and message
    "user": ("budget_above_user_budget", "a key's budget cannot exceed its user's budget"),
    "member": ("budget_above_member_budget", "an org key's budget cannot exceed its member's org budget"),
    "org": ("budget_above_org_budget", "a member's budget cannot exceed the org's budget"),
}


def apply_changes(cur, scope, owner_id, changes, ceiling=None):
    """Set, change or (budget null) remove a cap from ``changes``; whether it changed.

    A new cap starts with the period's spend so far. ``ceiling`` (scope, id): the cap this one may
    not exceed (a personal key's user, an org key's member, a member's org).
    """
    if not any(field in changes for field in FIELDS):
        return False
    current = budget_queries.figures(cur, scope, owner_id)
    budget = changes.get("budget", current["budget"])
    period = changes.get("budget_period", current["budget_period"])
    thresholds = changes.get("budget_alert_thresholds", current["budget_alert_thresholds"])
    if ceiling is not None and budget is not None:
        bound = budget_queries.figures(cur, *ceiling)
        limit = bound["budget"] if bound else None
        if limit is not None and budget > limit:
            code, message = _CEILING_ERRORS[ceiling[0]]
            details = {"budget": format_money(budget), f"{ceiling[0]}_budget": format_money(limit)}
            raise Invalid(message, details, code=code)
    thresholds = sorted(Decimal(str(threshold)) for threshold in thresholds)
    unchanged = (current["budget"], current["budget_period"], sorted(current["budget_alert_thresholds"]))
    if (budget, period, thresholds) == unchanged:
        return False  # a form that sends the cap as it is must not restart its period's figures
    spent = budget_queries.period_spend(cur, scope, owner_id, period) if budget is not None else Decimal(0)
    budget_queries.set_budget(cur, scope, owner_id, budget, period, thresholds, spent)
    return True


def announce(principal, request_id, settled_budgets):
    """After a settlement: announce each threshold a cap's spend newly crossed this period."""
    for figures in settled_budgets:
        if figures:
            _announce(principal, request_id, figures)


def _announce(principal, request_id, figures):
    budget, spent = Decimal(figures["budget"]), Decimal(figures["spent"])
    alerted = Decimal(figures["alerted"])
    crossed = [t for t in map(Decimal, figures["thresholds"]) if t > alerted and spent >= t * budget]
    if not crossed:
        return
    level, scope, owner_id = max(crossed), figures["scope"], figures["id"]
    details = {
        "scope": scope,
        "id": owner_id,
        "threshold": str(level.normalize()),
        "budget": format_money(budget),
        "spent": format_money(spent),
        "period": figures["period"],
        "resets_at": figures["resets_at"],
    }
    with db.transaction() as cur:
        if not budget_queries.claim_announcement(cur, scope, owner_id, level, figures["period_start"]):
            return  # another worker announced it
        audit.record(
            cur, "budget_threshold", principal["actor"], principal["user_id"], principal["api_key_id"], details
        )
    percent = f"{level * 100:.0f}%"
    message = f"{scope} {owner_id} has spent {format_money(spent)} of its {format_money(budget)} budget ({percent})"
    rule = f"budget:{scope}:{owner_id}:{figures['period_start'][:10]}:{percent}"
    severity = "critical" if level >= 1 else "warning"
    alerts.fire_alert(rule, message, severity, float(spent), float(level * budget), details, announce=False)
    logger.warning("budget threshold crossed", extra={**details, "request_id": request_id})


def resolve_ended_periods():
    """Resolve the threshold alerts of budget periods that have ended; how many."""
    with db.transaction() as cur:
        rules = budget_queries.ended_period_alerts(cur)
    for rule in rules:
        alerts.resolve_alert(rule)
    return len(rules)
