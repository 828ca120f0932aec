"""POST /admin/limit warns about windows a longer window of the same kind caps."""

from tests.helpers import create_user
from tests.helpers.limits import set_limits

# Every window's limit at most the next one's (bursts allowed: 10 a minute is 600 an hour kept up).
UNCAPPED = {
    "requests_per_minute": 10,
    "requests_per_hour": 100,
    "requests_per_day": 500,
    "tokens_per_minute": 20_000,
    "tokens_per_hour": 200_000,
    "tokens_per_day": 1_000_000,
}


def test_a_minute_override_above_the_hour_limit_is_reported_capped(client):
    user, _ = create_user(client, plan="trial")
    capped = {**UNCAPPED, "requests_per_minute": 300, "requests_per_hour": 100}
    response = set_limits(client, user_id=user["id"], rate_limits=capped)
    assert response.status_code == 200
    body = response.get_json()
    assert body["rate_limits"]["requests_per_minute"] == 300
    [warning] = body["warnings"]
    assert {k: warning[k] for k in ("code", "window", "capped_by")} == {
        "code": "capped_by_longer_window",
        "window": "requests_per_minute",
        "capped_by": "requests_per_hour",
    }
    assert "300" in warning["message"] and "100" in warning["message"]


def test_windows_that_fit_inside_the_longer_ones_give_no_warnings(client):
    user, _ = create_user(client, plan="trial")
    response = set_limits(client, user_id=user["id"], rate_limits=UNCAPPED)
    assert response.status_code == 200 and response.get_json()["warnings"] == []
    for plan in ("trial", "dev", "team", "enterprise"):  # a stock plan's bursts are not reported
        user, _ = create_user(client, plan=plan)
        plan_limits = set_limits(client, user_id=user["id"], rate_limits={"requests_per_minute": None})
        assert plan_limits.get_json()["warnings"] == [], plan


def test_token_windows_report_the_first_longer_window_that_caps_them(client):
    user, _ = create_user(client, plan="trial")
    capped = {**UNCAPPED, "tokens_per_minute": 5_000, "tokens_per_hour": 4_000, "tokens_per_day": 3_000}
    warnings = set_limits(client, user_id=user["id"], rate_limits=capped).get_json()["warnings"]
    # 5,000 a minute is above the hour's 4,000 (named first) and the day's; 4,000 an hour above 3,000 a day.
    assert [(w["window"], w["capped_by"]) for w in warnings] == [
        ("tokens_per_minute", "tokens_per_hour"),
        ("tokens_per_hour", "tokens_per_day"),
    ]


def test_warnings_read_the_plan_for_windows_without_an_override(client):
    user, _ = create_user(client, plan="dev")  # dev allows 2,000 requests an hour
    overrides = {**UNCAPPED, "requests_per_minute": 2_500, "requests_per_hour": None, "requests_per_day": 48_000}
    warnings = set_limits(client, user_id=user["id"], rate_limits=overrides).get_json()["warnings"]
    assert [(w["window"], w["capped_by"]) for w in warnings] == [("requests_per_minute", "requests_per_hour")]
