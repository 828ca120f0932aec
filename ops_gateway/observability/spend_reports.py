"""Spend reports: usage grouped by any of user, org, key, model, endpoint, day and tag over whole UTC days.

Served from the daily report rollups (``maintenance.rollups``, rewritten every usage_rollup run),
so a 90-day report sums a few rows per (day, user, key, model, endpoint) instead of every usage
record; a model there is the billed one (the one that answered a request with fallbacks). The
rollups hold the records created before their watermark (``rolled_up_at``, the last run); a
fresh report adds the records after it, read from usage_records, for at most MAX_FRESH_SPAN.
The caller's last requests come from usage_records itself, one index-ordered page at a time.
"""

import csv
import io
from datetime import UTC, date, datetime, time, timedelta

from ops_gateway.accounts import key_material
from ops_gateway.billing.money import format_money
from ops_gateway.core.csv_cells import csv_cell
from ops_gateway.core.errors import BadRequest
from ops_gateway.observability import spend_queries
from ops_gateway.pipeline import endpoints

# Dimension -> (rollup column, the columns a report shows for it).
DIMENSIONS = {
    "user": ("user_id", ("user_id", "email")),
    "org": ("org_id", ("org_id", "org_name")),
    "key": ("api_key_id", ("api_key_id", "key_name", "masked_key")),
    "model": ("model", ("model",)),
    "endpoint": ("endpoint", ("endpoint",)),
    "day": ("day", ("day",)),
    "tag": ("tag", ("tag",)),
}
METRICS = ("requests", "errors", "prompt_tokens", "completion_tokens", "cost", "avg_latency_ms")
MAX_DAYS = 366
# The days a report may name: far beyond any usage row, yet far enough from date.min and
# date.max that the default range (29 days back) and the day after the last stay dates.
FIRST_DAY, LAST_DAY = date(1970, 1, 1), date(9999, 12, 30)
MAX_GROUPS = 100_000
# The most a fresh report reads from usage_records: the job rolls up every few minutes, so a longer
# gap means it is not running, and the raw rows of days would make a report as slow as no rollups.
MAX_FRESH_SPAN = timedelta(days=1)
ENDPOINTS = endpoints.ENDPOINT_NAMES


def parse_group_by(text, allowed=tuple(DIMENSIONS)):
    """The comma-separated dimensions, in order: a non-empty list of distinct ``allowed`` names (else 400)."""
    names = [name.strip() for name in (text or "").split(",")]
    if not all(names) or len(set(names)) != len(names) or not set(names) <= set(allowed):
        raise BadRequest(
            f"group_by must be distinct comma-separated names among {', '.join(allowed)}",
            {"parameter": "group_by", "allowed": list(allowed)},
            code="invalid_group_by",
        )
    return names


def _day(raw, parameter):
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        day = None
    if day is None or not FIRST_DAY <= day <= LAST_DAY:
        raise BadRequest(
            f"{parameter} must be a date from {FIRST_DAY} to {LAST_DAY}, such as 2026-01-31",
            {"parameter": parameter, "value": raw[:64]},
            code="invalid_date",
        )
    return day


def report_days(start_raw, end_raw, today=None):
    """(first, last) UTC days, both included: end defaults to today, start to 29 days before end.

    400 when start is after end or the range is longer than MAX_DAYS.
    """
    today = today or datetime.now(UTC).date()
    last = _day(end_raw, "end_date") if end_raw else today
    first = _day(start_raw, "start_date") if start_raw else last - timedelta(days=29)
    if first > last:
        raise BadRequest("start_date is after end_date", {"parameter": "start_date"}, code="invalid_date_range")
    if (last - first).days + 1 > MAX_DAYS:
        raise BadRequest(f"a report covers at most {MAX_DAYS} days", {"max_days": MAX_DAYS}, code="date_range_too_long")
    return first, last


def _moments(first, last):
    """[start, end) of the UTC days [first, last]: first's midnight and the midnight after last."""
    return datetime.combine(first, time(), UTC), datetime.combine(last + timedelta(days=1), time(), UTC)


def _fresh_span(first, last, rolled_up_at, now):
    """[start, end) of the report's days, when its part after ``rolled_up_at`` (all of it before the
    first rollup) up to ``now`` is at most MAX_FRESH_SPAN; else 400."""
    start, end = _moments(first, last)
    if min(end, now) - max(start, rolled_up_at or start) > MAX_FRESH_SPAN:
        details = {
            "parameter": "fresh",
            "max_seconds": int(MAX_FRESH_SPAN.total_seconds()),
            "rolled_up_at": rolled_up_at.isoformat() if rolled_up_at else None,
        }
        raise BadRequest(
            f"fresh=true reads at most {MAX_FRESH_SPAN.total_seconds() / 3600:g} hours of usage not rolled up yet"
            " and this report needs more:"
            " end it earlier, or run the usage_rollup job first",
            details,
            code="fresh_span_too_long",
        )
    return start, end


def usage_report(cur, group_by, first, last, user_id=None, endpoint=None, fresh=False, org_id=None):
    """The report's groups (ordered by the dimensions, in the given order) and how far the rollups
    reach; ``endpoint`` (one of ENDPOINTS) counts only that endpoint's requests, ``user_id`` and
    ``org_id`` only that user's or org's (both: a member's use of the org's keys); ``fresh`` adds the
    usage records not rolled up yet (400 when they span more than MAX_FRESH_SPAN)."""
    columns = [DIMENSIONS[name][0] for name in group_by]
    filters = {"user_id": user_id, "endpoint": endpoint, "org_id": org_id}
    rolled_up_at = spend_queries.rollup_watermark(cur)
    span = _fresh_span(first, last, rolled_up_at, datetime.now(UTC)) if fresh else None
    rows = spend_queries.grouped_usage(cur, columns, "tag" in group_by, first, last, filters, MAX_GROUPS + 1, span)
    if len(rows) > MAX_GROUPS:
        raise BadRequest(
            f"the report has more than {MAX_GROUPS} groups; group by less or shorten the range",
            {"max_groups": MAX_GROUPS},
            code="report_too_large",
        )
    for row in rows:
        if "api_key_id" in columns:
            prefix, last4 = row.pop("prefix"), row.pop("last4")
            row["masked_key"] = key_material.mask(prefix, last4) if prefix else None
    return {
        "start_date": first,
        "end_date": last,
        "group_by": group_by,
        "endpoint": endpoint,
        "rolled_up_at": rolled_up_at,
        "groups": rows,
    }


def report_csv(report):
    """The report's groups as CSV: the dimensions' columns then the metrics, cells through ``csv_cell``."""
    columns = [column for name in report["group_by"] for column in DIMENSIONS[name][1]] + list(METRICS)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    for row in report["groups"]:
        cells = {**row, "cost": format_money(row["cost"])}
        writer.writerow([csv_cell(cells.get(column)) for column in columns])
    return buffer.getvalue()


def last_requests(cur, user_id, first, last, limit, cursor=None, endpoint=None):
    """The user's requests on the days [first, last] (of one endpoint, if given), newest first: a page
    of ``limit`` after ``cursor``."""
    start, end = _moments(first, last)
    return spend_queries.last_requests(cur, user_id, endpoint, start, end, limit, cursor)
