"""Spend reports: usage grouped by any of user, key, model, endpoint, day and tag over whole UTC days.

Served from the daily report rollups (``maintenance.rollups``, rewritten every usage_rollup run),
so a 90-day report sums a few rows per (day, user, key, model, endpoint) instead of every usage
record; a model there is the billed one (the one that answered a request with fallbacks);
today's figures are as of the last run (``rolled_up_at``). The caller's last requests come from
usage_records itself, one index-ordered page at a time.
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


def usage_report(cur, group_by, first, last, user_id=None, endpoint=None):
    """The report's groups (ordered by the dimensions, in the given order) and when they were rolled up;
    ``endpoint`` (one of ENDPOINTS) counts only that endpoint's requests."""
    columns = [DIMENSIONS[name][0] for name in group_by]
    filters = {"user_id": user_id, "endpoint": endpoint}
    rows = spend_queries.grouped_usage(cur, columns, "tag" in group_by, first, last, filters, MAX_GROUPS + 1)
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
        "rolled_up_at": spend_queries.newest_rollup_time(cur),
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
    start = datetime.combine(first, time(), UTC)
    end = datetime.combine(last + timedelta(days=1), time(), UTC)
    return spend_queries.last_requests(cur, user_id, endpoint, start, end, limit, cursor)
