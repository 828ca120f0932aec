"""/v1 windows end on UTC boundaries, and the headers and /user/monitor say when."""

import time
from datetime import UTC, datetime

import pytest

from tests.helpers import bearer, create_user

pytestmark = pytest.mark.usefixtures("upstream")  # OpenRouter faked for every test


def seconds_to_next(span, now):
    """Seconds from ``now`` (epoch) to the next multiple of ``span`` seconds since the epoch (UTC)."""
    return span - now % span


def test_windows_reset_on_the_utc_minute_hour_and_day_and_say_so(client):
    user, key = create_user(client, credits="5.00", plan="team")
    before = time.time()
    response = client.get("/v1/models", headers=bearer(key))
    assert response.status_code == 200
    # The tightest request window is the minute: it resets on the next UTC minute.
    assert int(response.headers["X-RateLimit-Reset-Requests"].rstrip("s")) <= seconds_to_next(60, before) + 1

    monitor = client.get("/user/monitor", headers=bearer(key)).get_json()["rate_limits"]
    for name, span in (("requests_per_minute", 60), ("requests_per_hour", 3600), ("requests_per_day", 86400)):
        reset_at = datetime.fromisoformat(monitor[name]["reset_at"])
        boundary = before + seconds_to_next(span, before)
        assert reset_at.utcoffset().total_seconds() == 0
        assert abs(reset_at.timestamp() - boundary) <= 2, (name, reset_at, datetime.fromtimestamp(boundary, UTC))
