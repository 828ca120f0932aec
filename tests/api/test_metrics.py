"""/metrics: Prometheus text with the gateway's counters moving as requests happen."""

import pytest

from tests.helpers import ADMIN, assert_error, bearer, create_user
from tests.helpers.metrics import scrape, value
from tests.helpers.upstream import UPSTREAM, chat

MODEL = "openai/gpt-4o-mini"


pytestmark = pytest.mark.usefixtures("upstream")  # OpenRouter faked for every test


def test_completion_moves_http_upstream_token_cost_and_cache_metrics(client):
    _, key = create_user(client, credits="1.00", plan="team")
    before = scrape(client)
    assert chat(client, key).status_code == 200
    after = scrape(client)

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    route = {"method": "POST", "route": "/v1/chat/completions", "status": "200"}
    assert delta("gateway_http_requests_total", **route) == 1
    assert delta("gateway_http_request_duration_seconds_count", **route) == 1
    assert delta("gateway_upstream_requests_total", model=MODEL, status="200") == 1
    assert delta("gateway_upstream_request_duration_seconds_count", model=MODEL, status="200") == 1
    assert delta("gateway_upstream_calls_total", endpoint="/chat/completions", status="200", outcome="ok") == 1
    assert delta("gateway_tokens_total", model=MODEL, kind="prompt") == 10
    assert delta("gateway_tokens_total", model=MODEL, kind="completion") == 20
    expected_cost = 10 * 0.00000015 + 20 * 0.0000006
    assert delta("gateway_cost_usd_total", model=MODEL) == pytest.approx(expected_cost)
    assert delta("gateway_credits_charged_usd_total", model=MODEL) == pytest.approx(expected_cost)
    assert (
        delta("gateway_model_cache_lookups_total", result="hits")
        + delta("gateway_model_cache_lookups_total", result="misses")
        >= 1
    )
    assert ("gateway_http_requests_in_flight", frozenset()) in after
    assert ("gateway_db_pool_connections_in_use", frozenset()) in after


def test_rejections_and_auth_failures_are_counted(client):
    user, key = create_user(client, credits="1.00", plan="team")
    limits = {"user_id": user["id"], "rate_limits": {"requests_per_minute": 0}}
    assert client.post("/admin/limit", json=limits, headers=ADMIN).status_code == 200
    before = scrape(client)
    assert_error(chat(client, key), 429, "rate_limited")
    assert_error(client.get("/user/monitor", headers=bearer("gw_live_" + "x" * 43)), 401, "invalid_api_key")
    after = scrape(client)
    window = {"window": "requests_per_minute"}
    assert (
        value(after, "gateway_rate_limit_rejections_total", **window)
        - value(before, "gateway_rate_limit_rejections_total", **window)
        == 1
    )
    reason = {"reason": "unknown_key"}
    assert (
        value(after, "gateway_auth_failures_total", **reason) - value(before, "gateway_auth_failures_total", **reason)
        == 1
    )


def test_model_refresh_outcomes_are_counted(client, upstream):
    before = scrape(client)
    client.post("/admin/refresh-models", headers=ADMIN)
    upstream.get(f"{UPSTREAM}/models", status_code=503)
    client.post("/admin/refresh-models", headers=ADMIN)
    after = scrape(client)
    for outcome in ("success", "failed"):
        labels = {"outcome": outcome}
        assert (
            value(after, "gateway_model_cache_refreshes_total", **labels)
            - value(before, "gateway_model_cache_refreshes_total", **labels)
            == 1
        )


def test_metrics_token_is_required_when_configured(make_app):
    client = make_app(METRICS_TOKEN="scrape-secret").test_client()
    assert_error(client.get("/metrics"), 401, "unauthorized")
    assert_error(client.get("/metrics", headers=bearer("wrong")), 401, "unauthorized")
    assert "gateway_http_requests_total" in {name for name, _ in scrape(client, bearer("scrape-secret"))}
