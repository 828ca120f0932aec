"""Spend caps (budgets) on users and keys: enforced with the credit hold, shown to the caller,
announced once per period at their thresholds."""

from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest

from ops_gateway.telemetry import alerts
from tests.helpers import ADMIN, assert_error, bearer, create_key, create_user
from tests.helpers.jobs import QUIET
from tests.helpers.upstream import chat

COST = Decimal(10) * Decimal("0.00000015") + Decimal(20) * Decimal("0.0000006")  # the faked usage: 0.0000135


def set_user_budget(client, user_id, **fields):
    response = client.patch(f"/admin/users/{user_id}", json=fields, headers=ADMIN)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def books(sql, user_id):
    [row] = sql(
        "SELECT u.credits, u.reserved_credits, u.budget_spent, u.budget_reserved,"
        " (SELECT coalesce(sum(cost), 0) FROM usage_records WHERE user_id = u.id) AS usage"
        " FROM users u WHERE u.id = %s",
        (user_id,),
    )
    return row


def test_a_user_budget_refuses_the_request_whose_worst_case_would_pass_it(client, upstream, sql):
    user, key = create_user(client, credits="1.00", plan="team")
    changed = set_user_budget(client, user["id"], budget="0.00005", budget_period="daily")
    assert (changed["budget"], changed["budget_period"]) == ("0.00005", "daily")
    assert chat(client, key).status_code == 200
    before = upstream.call_count
    error = assert_error(chat(client, key), 402, "budget_exceeded")
    assert upstream.call_count == before
    details = error["details"]
    assert (details["scope"], details["budget"], details["period"]) == ("user", "0.00005", "daily")
    assert Decimal(details["spent"]) == COST and Decimal(details["spent"]) + Decimal(details["required"]) > Decimal(
        "0.00005"
    )
    assert details["resets_at"].endswith("T00:00:00+00:00")
    assert books(sql, user["id"]) == {
        "credits": Decimal("1.00") - COST,
        "reserved_credits": 0,
        "budget_spent": COST,
        "budget_reserved": 0,
        "usage": COST,
    }
    # A cheaper request still fits; removing the cap lifts it.
    assert chat(client, key, max_tokens=1).status_code == 200
    set_user_budget(client, user["id"], budget=None)
    assert chat(client, key).status_code == 200


def test_a_key_budget_applies_to_that_key_only_and_never_above_the_users(client, upstream, sql):
    user, key = create_user(client, credits="1.00", plan="team")
    capped, capped_key = create_key(client, key, name="capped")
    path = f"/user/api-keys/{capped['id']}"
    changed = client.patch(path, json={"budget": "0.00001", "budget_period": "monthly"}, headers=bearer(key))
    assert changed.status_code == 200 and changed.get_json()["budget"] == "0.00001"
    assert assert_error(chat(client, capped_key), 402, "budget_exceeded")["details"]["scope"] == "key"
    assert chat(client, key).status_code == 200  # the user's other key has no cap
    set_user_budget(client, user["id"], budget="0.5")
    above = client.patch(path, json={"budget": "0.6"}, headers=bearer(key))
    assert_error(above, 422, "budget_above_user_budget")
    [row] = sql("SELECT budget FROM api_keys WHERE id = %s", (capped["id"],))
    assert row["budget"] == Decimal("0.00001")


def test_a_new_cap_counts_the_periods_spend_so_far(client, upstream):
    user, key = create_user(client, credits="1.00", plan="team")
    for _ in range(3):
        assert chat(client, key).status_code == 200
    set_user_budget(client, user["id"], budget="0.0001")
    [cap] = client.get("/user/balance", headers=bearer(key)).get_json()["budgets"]
    assert cap["scope"] == "user" and Decimal(cap["spent"]) == 3 * COST and Decimal(cap["reserved"]) == 0
    assert cap["budget_period"] == "monthly" and cap["resets_at"]
    assert client.get("/user/monitor", headers=bearer(key)).get_json()["budgets"] == [cap]


def test_a_past_periods_spend_does_not_count(client, upstream, sql):
    user, key = create_user(client, credits="1.00", plan="team")
    set_user_budget(client, user["id"], budget="0.00005", budget_period="weekly")
    sql(
        "UPDATE users SET budget_spent = 1, budget_period_start = now() - interval '8 days' WHERE id = %s",
        (user["id"],),
    )
    assert chat(client, key).status_code == 200
    assert books(sql, user["id"])["budget_spent"] == COST


def test_thresholds_fire_once_per_period_as_alert_and_audit_event(client, upstream, sql):
    user, key = create_user(client, credits="1.00", plan="team")
    set_user_budget(client, user["id"], budget="0.00005", budget_alert_thresholds=[0.2, 0.5])
    for _ in range(2):
        assert chat(client, key, max_tokens=10).status_code == 200
    rules = [row["rule"] for row in sql("SELECT rule FROM alerts ORDER BY id")]
    assert len(rules) == 2 and rules[0].endswith(":20%") and rules[1].endswith(":50%")
    assert all(rule.startswith(f"budget:user:{user['id']}:") for rule in rules)
    events = sql("SELECT api_key_id, details FROM api_key_audit_logs WHERE action = 'budget_threshold' ORDER BY id")
    assert [event["details"]["threshold"] for event in events] == ["0.2", "0.5"]
    assert chat(client, key, max_tokens=1).status_code == 200
    assert len(sql("SELECT id FROM alerts")) == 2  # nothing new crossed
    firing = client.get("/admin/alerts", headers=ADMIN).get_json()
    assert {alert["rule"] for alert in firing["active"]} >= set(rules)


def test_threshold_messages_go_out_from_the_alert_job_never_on_the_request_path(make_app, upstream, sql, monkeypatch):
    monkeypatch.setattr(alerts, "WEBHOOK_BACKOFF_SECONDS", 0)
    webhook = "http://hooks.test/budgets"
    upstream.post(webhook, [{"status_code": 503}] * alerts.WEBHOOK_ATTEMPTS + [{"text": "ok"}])
    client = make_app(ALERT_WEBHOOK_URL=webhook, **QUIET).test_client()
    user, key = create_user(client, credits="1.00", plan="team")
    set_user_budget(client, user["id"], budget="0.00005", budget_alert_thresholds=[0.2])
    budget_rule = "rule LIKE 'budget:%'"

    assert chat(client, key, max_tokens=10).status_code == 200
    assert sql(f"SELECT notifications FROM alerts WHERE {budget_rule}") == [{"notifications": 0}]
    webhook_calls = lambda: [call for call in upstream.request_history if call.url == webhook]  # noqa: E731
    assert webhook_calls() == []  # the request did not wait on the webhook

    announced = []
    for _ in range(3):  # the first run's delivery fails, the second's succeeds, the third owes nothing
        run = client.post("/admin/jobs/evaluate_alerts/run", headers=ADMIN).get_json()
        announced.append(run["details"]["alerts_announced"])
    assert announced == [0, 1, 0]
    texts = [call.json()["text"] for call in webhook_calls()]
    assert len(texts) == alerts.WEBHOOK_ATTEMPTS + 1
    assert all(f"budget:user:{user['id']}:" in text and "(20%)" in text for text in texts)
    assert sql(f"SELECT notifications FROM alerts WHERE {budget_rule}") == [{"notifications": 1}]


def test_concurrent_requests_never_pass_a_cap(client, upstream, sql):
    user, key = create_user(client, credits="1.00", plan="team")
    set_user_budget(client, user["id"], budget="0.0002")
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda _: chat(client, key).status_code, range(40)))
    assert set(statuses) <= {200, 402} and 402 in statuses
    row = books(sql, user["id"])
    assert row["budget_spent"] == row["usage"] == statuses.count(200) * COST <= Decimal("0.0002")
    assert row["budget_reserved"] == row["reserved_credits"] == 0


@pytest.mark.parametrize(
    "fields",
    [{"budget": "-1"}, {"budget_period": "yearly"}, {"budget_alert_thresholds": []}, {"budget_alert_thresholds": [3]}],
)
def test_bad_budget_fields_are_422(client, fields):
    user, _ = create_user(client)
    response = client.patch(f"/admin/users/{user['id']}", json=fields, headers=ADMIN)
    assert_error(response, 422, "validation_error")


def test_threshold_alerts_are_resolved_when_their_period_ends(client, upstream, sql):
    user, key = create_user(client, credits="1.00", plan="team")
    set_user_budget(client, user["id"], budget="0.00005", budget_alert_thresholds=[0.2])
    assert chat(client, key, max_tokens=10).status_code == 200
    job = client.post("/admin/jobs/evaluate_alerts/run", headers=ADMIN).get_json()
    assert job["details"]["budget_alerts_resolved"] == 0
    sql('UPDATE alerts SET details = details || \'{"resets_at": "2000-01-01T00:00:00+00:00"}\'')
    job = client.post("/admin/jobs/evaluate_alerts/run", headers=ADMIN).get_json()
    assert job["details"]["budget_alerts_resolved"] == 1
    assert sql("SELECT status FROM alerts WHERE rule LIKE 'budget:%'") == [{"status": "resolved"}]


def test_an_admin_caps_a_users_key_and_the_change_is_audited_as_the_admin(client, upstream, sql):
    user, key = create_user(client, credits="1.00", plan="team")
    capped, capped_key = create_key(client, key, name="capped")
    path = f"/admin/users/{user['id']}/api-keys/{capped['id']}"
    changed = client.patch(path, json={"budget": "0.00001", "budget_period": "daily"}, headers=ADMIN)
    assert changed.status_code == 200 and changed.get_json()["budget"] == "0.00001"
    assert_error(chat(client, capped_key), 402, "budget_exceeded")
    [audit] = sql(
        "SELECT actor, details FROM api_key_audit_logs WHERE action = 'update' AND api_key_id = %s", (capped["id"],)
    )
    assert audit["actor"] == "admin:bootstrap" and audit["details"]["budget"] == "0.00001"
