"""Jinja filters and globals for the dashboard templates: money, counts, times, the CSRF token."""

import json
from datetime import UTC, datetime

from blueprints.dashboard_charts import compact, dollars, milliseconds
from blueprints.dashboard_session import csrf_token
from ops_gateway.accounts.key_material import mask
from ops_gateway.billing.money import format_money


def money(value):
    """A decimal amount in dollars, exact (never via float): $1,012.50, $0.0000024."""
    if value is None:
        return "—"
    whole, _, fraction = format_money(value).partition(".")
    sign, digits = ("-", whole[1:]) if whole.startswith("-") else ("", whole)
    return f"{sign}${int(digits):,}.{fraction}"


def as_json(value):
    """A JSON column for reading: keys sorted, non-ASCII kept (autoescaping still applies)."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def when(value):
    """A timestamp as ``2026-11-28 14:05:09 UTC`` (the dashboard shows UTC throughout)."""
    return "—" if value is None else f"{value.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"


def ago(value):
    """How long ago, coarsely: 42 s, 5 min, 3 h, 2 d."""
    if value is None:
        return "never"
    seconds = (datetime.now(UTC) - value).total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if abs(seconds) >= size:
            return f"{seconds / size:.0f} {unit} ago"
    return f"{seconds:.0f} s ago"


def seconds(value):
    """A duration in seconds as 45 s, 5 min, 2 h."""
    if value is None:
        return "—"
    for unit, size in (("h", 3600), ("min", 60)):
        if value >= size and value % size == 0:
            return f"{value // size:.0f} {unit}"
    return f"{value:g} s"


def masked_key(row):
    """A key row as the API shows it, never the full key: ``gw_live_AbC…xYz9``."""
    return mask(row["prefix"], row["last4"])


def count(value):
    """Integers with thousands separators."""
    return "—" if value is None else f"{value:,}"


def register(blueprint):
    """Make the filters and ``csrf_token()`` available to every template."""
    for name, function in (
        ("money", money),
        ("when", when),
        ("ago", ago),
        ("seconds", seconds),
        ("count", count),
        ("masked", masked_key),
        ("amount", lambda v: "" if v is None else format_money(v)),
        ("json", as_json),
        ("usd", lambda v: "—" if v is None else dollars(v)),
        ("compact", lambda v: "—" if v is None else compact(v)),
        ("ms", lambda v: "—" if v is None else milliseconds(v)),
    ):
        blueprint.add_app_template_filter(function, name)
    blueprint.add_app_template_global(csrf_token, "csrf_token")
