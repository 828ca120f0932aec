"""What every dashboard action form shares: the confirmation step, form text to schema input, refusals as pages.

The dashboard runs no JavaScript, so a confirmation is a server round trip: the first POST is
validated and answered with a page restating the action, whose button re-posts the same fields
with ``confirmed=yes``; only that POST acts. Both carry the CSRF token (checked by ``protect``).
Input is validated by the admin API's own schemas, so a rule lives in one place; a refusal is a
page with the problems and a 4xx status, never a 500.
"""

import re

import marshmallow as ma
from flask import render_template, request

from blueprints.account_schemas import CreditAdjustmentSchema
from blueprints.envelope import status_of
from ops_gateway.billing import budgets
from ops_gateway.billing.money import format_money
from ops_gateway.core import db
from ops_gateway.core.errors import GatewayError

BUDGET_FORM_FIELDS = (*budgets.FIELDS, "allowed_models")
_LIST_SEPARATORS = re.compile(r"[\s,]+")
_NOT_CARRIED = ("csrf_token", "confirmed")  # the confirmation page sets both afresh


def confirmed():
    """Whether this POST came from the confirmation page, so the action runs now."""
    return request.form.get("confirmed") == "yes"


def ask(title, summary, button, back, danger=False):
    """The confirmation page: ``summary`` ((label, value) pairs), the same fields again, and a way back."""
    carried = [(name, value) for name, value in request.form.items(multi=True) if name not in _NOT_CARRIED]
    return render_template(
        "dashboard/confirm.html", title=title, summary=summary, button=button, back=back, danger=danger, fields=carried
    )


def acting(load, act, back):
    """Run ``act(cur, *subjects)`` in one transaction on the subjects ``load(cur)`` finds (a user;
    an org; a user and their key). A missing subject stays the 404 error page; a refusal after it
    (bad input, a rule, something else missing) rolls the transaction back and becomes a 4xx page
    with a way ``back``."""
    loaded = False
    try:
        with db.transaction() as cur:
            subjects = load(cur)
            loaded = True
            return act(cur, *subjects)
    except (ma.ValidationError, GatewayError) as error:
        if not loaded:
            raise
        return refusal(error, back)


def field_problems(error):
    """A marshmallow error as (field, problem) pairs a person can read; list items are numbered from 1."""
    pairs = []

    def walk(label, messages):
        if isinstance(messages, dict):
            for key, inner in messages.items():
                walk(f"{label} item {key + 1}" if isinstance(key, int) else str(key).replace("_", " "), inner)
        else:
            pairs.append((label, "; ".join(messages) if isinstance(messages, list) else str(messages)))

    walk("form", error.normalized_messages())
    return pairs


def refusal(error, back, title="Nothing was changed"):
    """A refused action as a page: 400 with each field's problem for bad input, else the domain error's status."""
    if isinstance(error, ma.ValidationError):
        status, message, problems = 400, "Some fields are not valid.", field_problems(error)
    else:
        status, message, problems = status_of(error), error.message, []
    page = render_template("dashboard/form_error.html", title=title, message=message, problems=problems, back=back)
    return page, status


def given(name, limit=1000):
    """A form field's text, trimmed and bounded; None when left blank."""
    text = request.form.get(name, "")[:limit].strip()
    return text or None


def listed(name):
    """A list typed into one field, items separated by commas, spaces or new lines; [] when blank."""
    text = request.form.get(name, "")[:20000]
    return [item for item in _LIST_SEPARATORS.split(text) if item]


def budget_input():
    """The budget-and-models form as schema input: blank budget removes the cap, blank thresholds keep them."""
    fields = {"budget": given("budget"), "allowed_models": listed("allowed_models")}
    if period := given("budget_period"):
        fields["budget_period"] = period
    if thresholds := listed("budget_alert_thresholds"):
        fields["budget_alert_thresholds"] = thresholds
    return fields


def credit_adjustment():
    """The credits form as a validated adjustment (as POST /admin/users|orgs/<id>/credits): (amount, reason, verb)."""
    typed = {name: value for name in ("amount", "reason") if (value := given(name)) is not None}
    body = CreditAdjustmentSchema().load(typed)
    return body["amount"], body["reason"], "Grant" if body["amount"] > 0 else "Remove"


def credit_summary(owner_line, amount, reason, account):
    """The confirmation lines of a credit grant or removal on ``account`` (a user's or an org's row):
    the change, why, the balance before and after, and what in-flight requests hold (a removal may
    not take the balance below it)."""
    verb = "Grant" if amount > 0 else "Remove"
    credits = account["credits"]
    lines = [
        owner_line,
        ("Change", f"{verb} ${format_money(abs(amount))}"),
        ("Reason", reason),
        ("Balance", f"${format_money(credits)} → ${format_money(credits + amount)}"),
    ]
    if account["reserved_credits"]:
        lines.append(("Held for requests", f"${format_money(account['reserved_credits'])}"))
    return lines


def credits_done(amount, balance):
    """The flash message after a credit change."""
    verb = "Granted" if amount > 0 else "Removed"
    return f"{verb} ${format_money(abs(amount))}; balance is now ${format_money(balance)}."


def budget_summary(changes):
    """The confirmation lines of a budget-and-models change."""
    budget, period = changes["budget"], changes.get("budget_period", "period unchanged")
    lines = [("Budget", "none (no cap)" if budget is None else f"${format_money(budget)}, {period}")]
    if "budget_alert_thresholds" in changes:
        lines.append(("Alert at", ", ".join(f"{value:.0%}" for value in changes["budget_alert_thresholds"])))
    lines.append(("Allowed models", ", ".join(changes["allowed_models"]) or "every model"))
    return lines
