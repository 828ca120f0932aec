"""Payload logging: off by default, opt-in per user, org or key, secrets redacted, bodies capped,
shown in the request log's detail view, switched with an audit entry, deleted by retention."""

import json
import re

from tests.helpers import ADMIN, bearer, create_key, create_user
from tests.helpers.orgs import create_org, member_with_key
from tests.helpers.upstream import SSE, UPSTREAM, chunk, sse

SECRET_KEY = "gw_live_" + "A" * 43


def send(client, key, request_id, content="hello", **body):
    """POST a chat completion and read it whole (a stream settles and is logged at its end)."""
    payload = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": content}], "max_tokens": 5}
    headers = {**bearer(key), "X-Request-ID": request_id}
    response = client.post("/v1/chat/completions", json={**payload, **body}, headers=headers)
    response.get_data()
    return response


def detail(client, request_id):
    response = client.get(f"/admin/requests/{request_id}", headers=ADMIN)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_nothing_is_stored_by_default(client, upstream, sql):
    _, key = create_user(client, credits="1.00", plan="team")
    assert send(client, key, "plain").status_code == 200
    assert detail(client, "plain")["payloads"] is None
    assert sql("SELECT count(*) AS n FROM request_payloads") == [{"n": 0}]


def test_a_users_switch_stores_redacted_bodies_shown_in_the_detail(client, upstream, sql):
    user, key = create_user(client, credits="1.00", plan="team")
    switched = client.patch(f"/admin/users/{user['id']}", json={"log_payloads": True}, headers=ADMIN)
    assert switched.status_code == 200 and switched.get_json()["log_payloads"] is True
    content = f"my key is {SECRET_KEY}, token Bearer abcdefghijklmnop, openai sk-proj-0123456789abcdefXYZ"
    assert send(client, key, "logged", content=content).status_code == 200
    payloads = detail(client, "logged")["payloads"]
    assert SECRET_KEY not in payloads["request"] and "abcdefghijklmnop" not in payloads["request"]
    assert "sk-proj-0123456789abcdefXYZ" not in payloads["request"]
    assert payloads["request"].count("[REDACTED]") == 3 and "my key is" in payloads["request"]
    assert json.loads(payloads["response"])["choices"] and payloads["truncated"] is False
    own = client.get("/user/requests/logged", headers=bearer(key)).get_json()["payloads"]
    assert own == payloads
    [audit] = sql(
        "SELECT details FROM api_key_audit_logs WHERE action = 'user_updated' AND user_id = %s", (user["id"],)
    )
    assert audit["details"]["changes"] == {"log_payloads": True}


def test_configured_patterns_are_redacted_and_bodies_are_capped(make_app, upstream, sql):
    client = make_app(
        PAYLOAD_REDACT_PATTERNS=(re.compile(r"\d{4}-\d{4}-\d{4}-\d{4}"),), PAYLOAD_MAX_BYTES=200
    ).test_client()
    _, key = create_user(client, credits="1.00", plan="team")
    created, logged_key = create_key(client, key, name="logged")
    assert (
        client.patch(f"/user/api-keys/{created['id']}", json={"log_payloads": True}, headers=bearer(key)).status_code
        == 200
    )
    assert send(client, logged_key, "card", content="card 4111-1111-1111-1111 " + "x" * 500).status_code == 200
    assert send(client, key, "other-key").status_code == 200  # the user's other key does not log
    payloads = detail(client, "card")["payloads"]
    assert "4111" not in payloads["request"] and "[REDACTED]" in payloads["request"]
    assert len(payloads["request"]) == 200 and payloads["truncated"] is True
    assert detail(client, "other-key")["payloads"] is None


def test_an_orgs_switch_logs_its_keys_streams_and_failures(client, upstream, sql):
    org = create_org(client, credits="1.00")
    assert client.patch(f"/admin/orgs/{org['id']}", json={"log_payloads": True}, headers=ADMIN).status_code == 200
    _, personal, org_key = member_with_key(client, org["id"])
    events = sse(chunk("Hel"), chunk("lo"), chunk(usage={"prompt_tokens": 10, "completion_tokens": 2}), "[DONE]")
    upstream.post(f"{UPSTREAM}/chat/completions", text=events, headers=SSE)
    assert send(client, org_key, "org-stream", stream=True).status_code == 200
    response = detail(client, "org-stream")["payloads"]["response"]
    assert '"Hel"' in response and response.endswith("data: [DONE]\n\n") and "gateway-cost" not in response
    upstream.post(f"{UPSTREAM}/chat/completions", status_code=500, json={"error": {"code": 500, "message": "x"}})
    assert send(client, org_key, "org-failure").status_code >= 500
    assert json.loads(detail(client, "org-failure")["payloads"]["response"])["error"]["status"] == 500
    assert send(client, personal, "personal").status_code >= 500
    assert detail(client, "personal")["payloads"] is None  # the member's own keys are not the org's


def test_the_retention_job_deletes_old_payloads(client, upstream, sql):
    days = 30  # PAYLOAD_RETENTION_DAYS' default
    user, key = create_user(client, credits="1.00", plan="team")
    client.patch(f"/admin/users/{user['id']}", json={"log_payloads": True}, headers=ADMIN)
    for request_id in ("old", "new"):
        assert send(client, key, request_id).status_code == 200
    sql(
        "UPDATE request_payloads SET created_at = now() - make_interval(days => %s + 1)"
        " WHERE settlement_id = (SELECT settlement_id FROM usage_records WHERE request_id = 'old')",
        (days,),
    )
    job = client.post("/admin/jobs/retention/run", headers=ADMIN)
    assert job.status_code == 200, job.get_json()
    assert detail(client, "old")["payloads"] is None and detail(client, "new")["payloads"] is not None


def test_a_cache_hits_replay_is_logged_too(client, upstream, sql):
    user, key = create_user(client, credits="1.00", plan="team")
    client.patch(f"/admin/users/{user['id']}", json={"log_payloads": True}, headers=ADMIN)
    events = sse(chunk("Hel"), chunk("lo"), chunk(usage={"prompt_tokens": 10, "completion_tokens": 2}), "[DONE]")
    upstream.post(f"{UPSTREAM}/chat/completions", text=events, headers=SSE)
    body = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    for request_id in ("first", "replayed"):
        headers = {**bearer(key), "X-Request-ID": request_id, "X-Gateway-Cache-TTL": "60"}
        client.post("/v1/chat/completions", json=body, headers=headers).get_data()
    assert detail(client, "replayed")["cache_hit"] is True
    assert detail(client, "replayed")["payloads"]["response"] == detail(client, "first")["payloads"]["response"]
