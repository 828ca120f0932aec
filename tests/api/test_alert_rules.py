"""evaluate_alert_rules(): one firing and one resolution message per incident, to a real local webhook."""

import json
import threading
import time

import pytest
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from ops_gateway.observability import system_state
from ops_gateway.observability.alert_rules import evaluate_alert_rules
from ops_gateway.telemetry import alerts
from tests.helpers import ADMIN, bearer
from tests.helpers.jobs import QUIET


@pytest.fixture
def webhook():
    """A webhook receiver on 127.0.0.1 collecting every JSON body it is sent."""
    received = []

    @Request.application
    def receive(request):
        received.append(json.loads(request.get_data()))
        return Response("ok")

    server = make_server("127.0.0.1", 0, receive)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook", received
    server.shutdown()
    thread.join(timeout=5)


def messages_about(received, rule):
    return [m["text"] for m in received if f" {rule}" in m["text"]]


def evaluate(app, times=1):
    with app.app_context():
        return [evaluate_alert_rules() for _ in range(times)][-1]


def test_auth_failure_surge_fires_once_and_resolves_once(make_app, webhook, sql):
    url, received = webhook
    app = make_app(ALERT_WEBHOOK_URL=url, ALERT_AUTH_FAILURES_5M=3, AUTH_FAILURE_LIMIT="1000 per 5 minutes", **QUIET)
    client = app.test_client()
    for _ in range(4):
        client.get("/user/monitor", headers=bearer("gw_live_" + "z" * 43))
    assert evaluate(app, times=3)["auth_failure_surge"] == "firing"
    [alert] = sql("SELECT status, value, threshold, notifications FROM alerts WHERE rule = 'auth_failure_surge'")
    assert alert == {"status": "firing", "value": 4.0, "threshold": 3.0, "notifications": 1}

    sql("UPDATE api_key_audit_logs SET created_at = now() - interval '10 minutes'")  # the surge is over
    assert evaluate(app, times=2)["auth_failure_surge"] == "ok"
    texts = messages_about(received, "auth_failure_surge")
    assert len(texts) == 2
    assert texts[0].startswith(":rotating_light: [FIRING]") and "4 failed authentications" in texts[0]
    assert texts[1].startswith(":white_check_mark: [RESOLVED]")
    assert sql("SELECT status FROM alerts WHERE rule = 'auth_failure_surge'") == [{"status": "resolved"}]


def add_completions(sql, count, status="success", latency_ms=100.0):
    sql(
        "INSERT INTO usage_records (request_id, user_id, model, status, latency_ms)"
        " SELECT 'r' || n, 1, 'm', %s, %s FROM generate_series(1, %s) AS n",
        (status, latency_ms, count),
    )


def test_error_rate_and_latency_need_enough_traffic(make_app, sql):
    app = make_app(ALERT_ERROR_RATE_PERCENT=5.0, ALERT_P95_LATENCY_MS=1000, **QUIET)
    add_completions(sql, 2, status="error", latency_ms=9000.0)
    outcome = evaluate(app)
    assert (outcome["error_rate"], outcome["p95_latency"]) == ("ok", "ok")  # 2 requests say nothing yet
    add_completions(sql, 18, latency_ms=9000.0)
    outcome = evaluate(app)
    assert (outcome["error_rate"], outcome["p95_latency"]) == ("firing", "firing")  # 10% errors, p95 9 s
    firing = {r["rule"]: r for r in sql("SELECT rule, value, severity FROM alerts WHERE status = 'firing'")}
    assert firing["error_rate"]["value"] == 10.0 and firing["error_rate"]["severity"] == "critical"
    assert firing["p95_latency"]["value"] == 9000.0


def test_rate_limit_surge_counts_folded_repeats(make_app, sql):
    app = make_app(ALERT_RATE_LIMITED_5M=10, **QUIET)
    sql("INSERT INTO security_events (type, count) VALUES ('rate_limit_exceeded', 6), ('rate_limit_exceeded', 5)")
    assert evaluate(app)["rate_limit_surge"] == "firing"


def test_resource_rules_read_every_web_process_sample(make_app, redis_client):
    app = make_app(ALERT_CPU_PERCENT=80.0, ALERT_MEMORY_PERCENT=1000.0, ALERT_POOL_SATURATION_PERCENT=50.0)
    hot = {"cpu_percent": 97.0, "memory_percent": 1.0, "pool_in_use": 9, "pool_max": 12, "at": time.time()}
    redis_client.hset(system_state.SAMPLES_KEY, "web-2:42", json.dumps(hot))
    stale = {**hot, "at": 0}
    redis_client.hset(system_state.SAMPLES_KEY, "web-9:1", json.dumps(stale))
    outcome = evaluate(app)
    assert (outcome["cpu_usage"], outcome["db_pool_saturation"], outcome["memory_usage"]) == ("firing",) * 2 + ("ok",)
    assert not redis_client.hexists(system_state.SAMPLES_KEY, "web-9:1")  # a stopped process is forgotten


def test_health_status_alert_follows_dependencies(make_app, sql):
    app = make_app(**QUIET)
    assert evaluate(app)["health_status"] == "ok"
    sql("UPDATE model_catalog SET last_attempt_at = now(), last_error_at = now(), last_error = 'down'")
    assert evaluate(app)["health_status"] == "firing"
    [alert] = sql("SELECT message, severity FROM alerts WHERE rule = 'health_status'")
    assert alert == {
        "message": "gateway is degraded: database connected, redis connected, openrouter error",
        "severity": "warning",
    }


def test_an_unset_upstream_key_alone_does_not_fire_the_health_alert_but_with_redis_down_it_does(make_app, sql):
    unconfigured = {"OPENROUTER_API_KEY": None, "OPENROUTER_BASE_URL": "https://openrouter.ai/api/v1", **QUIET}
    assert evaluate(make_app(**unconfigured))["health_status"] == "ok"
    assert evaluate(make_app(**unconfigured, REDIS_URL="redis://127.0.0.1:1/0"))["health_status"] == "firing"
    [alert] = sql("SELECT message FROM alerts WHERE rule = 'health_status'")
    assert alert["message"] == "gateway is degraded: database connected, redis disconnected, openrouter unconfigured"


def test_a_failing_webhook_is_tried_once_per_run_for_a_firing_rule(make_app, requests_mock, monkeypatch):
    monkeypatch.setattr(alerts, "WEBHOOK_BACKOFF_SECONDS", 0)
    url = "http://hooks.test/down"
    requests_mock.post(url, status_code=503)
    app = make_app(ALERT_WEBHOOK_URL=url, ALERT_AUTH_FAILURES_5M=3, AUTH_FAILURE_LIMIT="1000 per 5 minutes", **QUIET)
    client = app.test_client()
    for _ in range(4):
        client.get("/user/monitor", headers=bearer("gw_live_" + "z" * 43))
    for _ in range(2):
        run = client.post("/admin/jobs/evaluate_alerts/run", headers=ADMIN).get_json()
        assert run["details"]["auth_failure_surge"] == "firing" and run["details"]["alerts_announced"] == 0
    surge_calls = [call for call in requests_mock.request_history if "auth_failure_surge" in call.json()["text"]]
    assert len(surge_calls) == 2 * alerts.WEBHOOK_ATTEMPTS  # one bounded series per run, not two
