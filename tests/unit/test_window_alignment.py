"""Request and token windows end on UTC minute, hour and day boundaries."""

from datetime import UTC, datetime

import pytest

from ops_gateway.limits.windows import WINDOWS


def at(text):
    """Epoch seconds of an ISO 8601 UTC time."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def window(name):
    """The declared window called ``name``."""
    return next(w for w in WINDOWS if w.name == name)


@pytest.mark.parametrize(
    ("name", "first_hit", "reset"),
    [
        ("requests_per_minute", "2026-03-01T10:15:42.600", "2026-03-01T10:16:00"),
        ("requests_per_hour", "2026-03-01T10:15:42", "2026-03-01T11:00:00"),
        ("requests_per_day", "2026-03-01T23:59:30", "2026-03-02T00:00:00"),
        ("tokens_per_day", "2026-03-01T00:00:00", "2026-03-02T00:00:00"),
    ],
)
def test_a_first_hit_expires_on_the_next_utc_boundary(name, first_hit, reset):
    ttl = window(name).ttl_at(at(first_hit))
    assert int(at(first_hit)) + ttl == at(reset)


def test_a_day_window_opened_in_the_evening_resets_at_midnight_not_24_hours_later():
    assert window("requests_per_day").ttl_at(at("2026-03-01T18:00:00")) == 6 * 3600
