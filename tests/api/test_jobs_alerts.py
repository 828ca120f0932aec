"""Alerts: one row and one message per incident, a resolution message, cooldown, bounded webhook retries."""

import pytest
import requests

from ops_gateway.telemetry import alerts

WEBHOOK = "http://hooks.test/alerts"


@pytest.fixture
def alert_app(make_app, monkeypatch):
    """An app with a webhook and no retry pauses."""
    monkeypatch.setattr(alerts, "WEBHOOK_BACKOFF_SECONDS", 0)
    return make_app(ALERT_WEBHOOK_URL=WEBHOOK, ALERT_COOLDOWN_SECONDS=900)


def texts(requests_mock):
    return [request.json()["text"] for request in requests_mock.request_history]


def test_one_incident_is_one_row_one_firing_and_one_resolution_message(alert_app, sql, requests_mock):
    requests_mock.post(WEBHOOK, text="ok")
    with alert_app.app_context():
        first = alerts.fire_alert("error_rate", "error rate 9%", value=9.0, threshold=5.0)
        again = alerts.fire_alert("error_rate", "error rate 12%", value=12.0, threshold=5.0)
        resolved = alerts.resolve_alert("error_rate")
        assert alerts.resolve_alert("error_rate") is None
    assert first["created"] and not again["created"]
    assert first["id"] == again["id"] and again["value"] == 12.0  # the open incident follows the latest value
    assert resolved["status"] == "resolved" and resolved["resolved_at"]
    sent = texts(requests_mock)
    assert len(sent) == 2
    assert sent[0].startswith(":rotating_light: [FIRING] warning error_rate: error rate 9% (value 9, threshold 5)")
    assert "[RESOLVED] error_rate" in sent[1]
    assert sql("SELECT status, notifications FROM alerts") == [{"status": "resolved", "notifications": 2}]


def test_flapping_within_the_cooldown_stays_quiet_until_it_passes(alert_app, sql, requests_mock):
    requests_mock.post(WEBHOOK, text="ok")
    with alert_app.app_context():
        alerts.fire_alert("p95_latency", "slow")
        alerts.resolve_alert("p95_latency")
        alerts.fire_alert("p95_latency", "slow again")  # within the cooldown of the resolution message
        assert len(requests_mock.request_history) == 2
        sql("UPDATE alerts SET last_notified_at = now() - interval '1 hour' WHERE status = 'resolved'")
        alerts.fire_alert("p95_latency", "still slow")  # still firing once the cooldown passed: announced
    assert "[FIRING] warning p95_latency: still slow" in texts(requests_mock)[-1]
    assert len(requests_mock.request_history) == 3


def test_webhook_retries_are_bounded_and_an_undelivered_firing_is_sent_later(alert_app, sql, requests_mock):
    requests_mock.post(
        WEBHOOK, [{"status_code": 502}, {"exc": requests.exceptions.ConnectTimeout}, {"status_code": 503}]
    )
    with alert_app.app_context():
        alerts.fire_alert("db_pool", "saturated", severity="critical")
        assert requests_mock.call_count == alerts.WEBHOOK_ATTEMPTS
        assert sql("SELECT notifications, last_notified_at FROM alerts")[0] == {
            "notifications": 0,
            "last_notified_at": None,
        }
        requests_mock.post(WEBHOOK, text="ok")
        alerts.fire_alert("db_pool", "saturated", severity="critical")
    assert sql("SELECT notifications FROM alerts") == [{"notifications": 1}]


def test_a_client_error_is_not_retried(alert_app, requests_mock):
    requests_mock.post(WEBHOOK, status_code=404)
    with alert_app.app_context():
        assert alerts.deliver_webhook("hello") is False
    assert requests_mock.call_count == 1


def test_without_a_webhook_alerts_are_still_stored(app, sql):
    with app.app_context():
        alerts.fire_alert("backup_stale", "old", severity="critical")
    assert sql("SELECT rule, status, notifications FROM alerts") == [
        {"rule": "backup_stale", "status": "firing", "notifications": 0}
    ]
