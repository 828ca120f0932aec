"""The rate-limit window registry and its arithmetic: derived fields and headers, Redis keys and
expiries, quota periods, what is left and when a window resets."""

from datetime import UTC, datetime

from blueprints.limit_schemas import EffectiveWindowsSchema, PlanSchema, RateLimitsSchema
from blueprints.monitor_schemas import RateLimitWindowsSchema
from ops_gateway.limits import plans, window_status, windows
from ops_gateway.limits.windows import QUOTAS, REQUESTS, TOKENS, WINDOWS, Window


def by_name(name):
    return next(w for w in WINDOWS if w.name == name)


def test_every_window_is_a_field_of_the_admin_and_monitor_schemas():
    names = {w.name for w in WINDOWS}
    assert set(RateLimitsSchema().fields) == names
    assert set(EffectiveWindowsSchema().fields) == names
    assert set(RateLimitWindowsSchema().fields) == names
    assert names | {q.name for q in QUOTAS} <= set(PlanSchema().fields)


def test_every_window_is_a_plan_column_and_an_override_column():
    for window in WINDOWS:
        assert window.name in plans.PLAN_COLUMNS.split(", ")
        assert f"p.{window.name}" in plans.LIMIT_COLUMNS.split(", ")
        assert f"o.{window.name} AS o_{window.name}" in plans.LIMIT_COLUMNS.split(", ")


def test_an_override_replaces_the_plan_value_window_by_window():
    row = {w.name: 100 for w in WINDOWS} | {f"o_{w.name}": None for w in WINDOWS}
    row["o_tokens_per_hour"] = 0
    limits, sources = plans.effective_limits(row)
    assert limits["tokens_per_hour"] == 0 and sources["tokens_per_hour"] == "override"
    assert limits["requests_per_minute"] == 100 and sources["requests_per_minute"] == "plan"


def test_window_keys_are_the_limits_library_keys_with_the_user_hash_tag_and_carry_the_limit():
    assert by_name("requests_per_minute").key("LIMITS", 7, 10) == "LIMITS:LIMITER/{u:7}/v1/10/1/minute"
    assert by_name("tokens_per_hour").key("LIMITS", 7, 50) == "LIMITS:LIMITER/tokens/{u:7}/50/1/hour"
    assert by_name("requests_per_day").key("LIMITS", 7, 11) != by_name("requests_per_day").key("LIMITS", 7, 10)


def test_window_keys_of_a_user_follow_the_registry():
    keys = windows.window_keys("LIMITS", 7, tuple(range(1, len(WINDOWS) + 1)))
    assert list(keys) == [w.name for w in WINDOWS]
    assert keys["requests_per_hour"] == "LIMITS:LIMITER/{u:7}/v1/2/1/hour"


def test_a_window_expires_after_its_length():
    assert [w.seconds for w in WINDOWS] == [60, 3600, 86400, 60, 3600, 86400]
    assert Window("requests_per_5_minutes", REQUESTS, "minute", 5).seconds == 300


def test_requests_and_tokens_are_split_by_kind_in_registry_order():
    assert [w.name for w in windows.REQUEST_WINDOWS] == ["requests_per_minute", "requests_per_hour", "requests_per_day"]
    assert [w.name for w in windows.TOKEN_WINDOWS] == ["tokens_per_minute", "tokens_per_hour", "tokens_per_day"]


def test_quota_keys_are_one_hash_per_utc_day_and_month_under_the_user_hash_tag():
    keys = windows.quota_keys(7, datetime(2026, 3, 31, 23, 59, 59, tzinfo=UTC))
    assert keys == {
        "daily_request_quota": "gw:{u:7}:quota:20260331",
        "monthly_request_quota": "gw:{u:7}:quota:202603",
        "daily_token_quota": "gw:{u:7}:quota:20260331",
        "monthly_token_quota": "gw:{u:7}:quota:202603",
    }
    assert [windows.period_number(q) for q in QUOTAS] == [1, 2, 1, 2]


def test_a_quota_period_is_rebuilt_from_its_first_utc_day():
    now = datetime(2026, 3, 31, 23, 59, 59, tzinfo=UTC)
    assert [p.first_day(now).isoformat() for p in windows.QUOTA_PERIODS] == ["2026-03-31", "2026-03-01"]


def test_quota_keys_outlive_their_period():
    ttl = {q.name: q.ttl_seconds for q in QUOTAS}
    assert ttl["daily_request_quota"] == 90000 and ttl["monthly_token_quota"] == 32 * 86400


def test_a_quota_resets_at_utc_midnight_or_the_first_of_next_month():
    daily, monthly = QUOTAS[0], QUOTAS[1]
    assert daily.seconds_left(datetime(2026, 3, 31, 23, 59, 59, tzinfo=UTC)) == 1
    assert monthly.seconds_left(datetime(2026, 2, 10, 12, 0, tzinfo=UTC)) == 18 * 86400 + 12 * 3600
    assert monthly.seconds_left(datetime(2026, 12, 31, 0, 0, tzinfo=UTC)) == 86400


def test_a_completion_adds_one_to_request_quotas_and_its_tokens_to_token_quotas():
    assert REQUESTS.quota_increment(42) == 1
    assert TOKENS.quota_increment(42) == 42


def test_a_missing_counter_has_everything_left_and_resets_now():
    assert windows.reading(10, None, -2, 1000.0) == {"limit": 10, "used": 0, "remaining": 10, "reset_time": 1000.0}


def test_a_counter_over_its_limit_has_nothing_left():
    assert windows.reading(10, "15", 30, 1000.0) == {"limit": 10, "used": 10, "remaining": 0, "reset_time": 1030.0}


def test_reset_seconds_are_whole_seconds_rounded_down_and_never_negative():
    assert windows.reset_seconds(1060.0, 1000.0) == 60
    assert windows.reset_seconds(1060.0, 1000.001) == 59
    assert windows.reset_seconds(1000.0, 1005.0) == 0


def test_status_reads_a_count_and_a_ttl_per_window_in_registry_order():
    limits = {w.name: 10 for w in WINDOWS}
    replies = ["3", 30, None, -2, "10", 500, "100", 40, None, -2, "0", 86000]
    report = window_status.status_from(limits, replies)
    assert list(report) == [w.name for w in WINDOWS]
    assert [report[w.name]["remaining"] for w in WINDOWS] == [7, 10, 0, 0, 10, 10]
    assert 28 <= report["requests_per_minute"]["reset_seconds"] <= 30
    assert report["requests_per_hour"]["reset_seconds"] == 0


def window(limit, remaining, reset_seconds):
    return {"limit": limit, "used": limit - remaining, "remaining": remaining, "reset_seconds": reset_seconds}


def test_headers_report_the_tightest_window_of_each_kind():
    report = {
        "requests_per_minute": window(10, 4, 30),
        "requests_per_hour": window(100, 2, 1200),
        "requests_per_day": window(500, 200, 50000),
        "tokens_per_minute": window(1000, 10, 20),
        "tokens_per_hour": window(9000, 900, 100),
        "tokens_per_day": window(90000, 9000, 100),
    }
    assert window_status.headers_for(report) == {
        "X-RateLimit-Limit-Requests": "100",
        "X-RateLimit-Remaining-Requests": "2",
        "X-RateLimit-Reset-Requests": "1200s",
        "RateLimit-Limit": "100",
        "RateLimit-Remaining": "2",
        "RateLimit-Reset": "1200",
        "X-RateLimit-Limit-Tokens": "1000",
        "X-RateLimit-Remaining-Tokens": "10",
        "X-RateLimit-Reset-Tokens": "20s",
    }


def test_ties_go_to_the_shorter_window():
    report = {w.name: window(10, 5, w.seconds) for w in WINDOWS}
    headers = window_status.headers_for(report)
    assert headers["X-RateLimit-Reset-Requests"] == "60s" and headers["X-RateLimit-Reset-Tokens"] == "60s"
