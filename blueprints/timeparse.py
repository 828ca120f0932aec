"""Parsing client-supplied timestamps strictly, forgiving only URL-decoding damage."""

import re
from datetime import UTC, datetime

from ops_gateway.core.errors import BadRequest

# "2026-01-01T00:00:00 00:00" (or " 0000", " 00"): a "+" that URL decoding turned into a space.
_DECODED_PLUS = re.compile(r"^(.*\d)\s(\d{2}(?::?\d{2})?)$")


def parse_timestamp(raw, parameter):
    """ISO 8601 with Z or an offset (naive means UTC) → aware datetime; 400 envelope naming the parameter."""
    text = raw.strip()
    match = _DECODED_PLUS.match(text)
    if match and "T" in match.group(1):
        text = f"{match.group(1)}+{match.group(2)}"
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        # Normalise to UTC: Postgres rejects offsets beyond ±15:59 that Python accepts.
        value = value.replace(tzinfo=value.tzinfo or UTC).astimezone(UTC)
    except (ValueError, OverflowError):
        raise BadRequest(
            f"{parameter} must be an ISO 8601 timestamp such as 2026-01-31T00:00:00Z",
            {"parameter": parameter, "value": raw[:64]},
            code="invalid_date",
        ) from None
    return value
