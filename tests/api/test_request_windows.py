"""/v1 request windows counted in one Redis round trip, exactly as Flask-Limiter counted them."""

import pytest

from tests.helpers import assert_error, bearer, create_user
from tests.helpers.limits import set_limits
from tests.helpers.upstream import chat

pytestmark = pytest.mark.usefixtures("upstream")  # OpenRouter faked for every test


def window_count(redis_client, user_id, window):
    """The counter of one of the user's request windows, whatever its limit (0 when absent)."""
    keys = redis_client.keys(f"LIMITS:LIMITER/{{u:{user_id}}}/v1/*/1/{window}")
    return sum(int(redis_client.get(key)) for key in keys)


def test_a_breached_window_stops_the_count_of_longer_windows(client, redis_client):
    user, key = create_user(client, credits="5.00", plan="team")
    set_limits(client, user_id=user["id"], rate_limits={"requests_per_minute": 1})
    assert chat(client, key).status_code == 200
    assert_error(chat(client, key), 429, "rate_limited")
    assert_error(client.get("/v1/models", headers=bearer(key)), 429, "rate_limited")
    assert window_count(redis_client, user["id"], "minute") == 3
    assert window_count(redis_client, user["id"], "hour") == 1
    assert window_count(redis_client, user["id"], "day") == 1


def test_a_request_refused_by_validation_is_not_counted(client, redis_client):
    user, key = create_user(client, credits="5.00", plan="team")
    set_limits(client, user_id=user["id"], rate_limits={"requests_per_minute": 1})
    assert_error(chat(client, key, messages=[]), 422, "validation_error")
    assert chat(client, key).status_code == 200
    assert window_count(redis_client, user["id"], "minute") == 1


def test_request_window_429_names_the_window_and_carries_retry_after(client):
    user, key = create_user(client, credits="5.00", plan="team")
    set_limits(client, user_id=user["id"], rate_limits={"requests_per_hour": 0})
    response = client.get("/v1/models", headers=bearer(key))
    error = assert_error(response, 429, "rate_limited")
    assert error["details"] == {"limit": 0, "window": "requests_per_hour"}
    assert 1 <= int(response.headers["Retry-After"]) <= 3600
    assert response.headers["X-RateLimit-Remaining-Requests"] == "0"
