"""Query arguments shared by the log endpoints: a validated date range and an opaque cursor."""

from blueprints.envelope import ApiError
from blueprints.paging import decode_cursor
from blueprints.timeparse import parse_timestamp


def whole_number(raw, max_digits=18):
    """``raw`` as a non-negative int if it is only ASCII digits (at most ``max_digits``), else None.

    ``str.isdigit`` alone also accepts digits ``int`` cannot read, such as ``²``.
    """
    if raw and len(raw) <= max_digits and raw.isascii() and raw.isdigit():
        return int(raw)
    return None


def page_number(raw):
    """The page a ``?page=`` value names: 1 when absent or not a positive whole number."""
    return max(whole_number(raw or "1", max_digits=9) or 1, 1)


def date_range(args):
    """(start, end) from start_date/end_date; 400 envelopes for a bad date or an inverted range."""
    start = parse_timestamp(args["start_date"], "start_date") if args.get("start_date") else None
    end = parse_timestamp(args["end_date"], "end_date") if args.get("end_date") else None
    if start and end and start > end:
        raise ApiError(400, "invalid_date_range", "start_date is after end_date", {"parameter": "start_date"})
    return start, end


def page_cursor(args):
    """The decoded ``cursor`` argument, or None; 400 when it was not made by this API."""
    if not args.get("cursor"):
        return None
    try:
        return decode_cursor(args["cursor"])
    except ValueError:
        raise ApiError(
            400, "invalid_cursor", "cursor was not returned by this endpoint", {"parameter": "cursor"}
        ) from None
