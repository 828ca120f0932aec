"""Non-finite numbers in a JSON body are refused at parse time; the client's own bad bodies never fire
the error-rate alert."""

import pytest

from ops_gateway.observability.alert_rules import evaluate_alert_rules
from tests.helpers import ADMIN, assert_error, bearer, create_user
from tests.helpers.jobs import QUIET
from tests.helpers.upstream import UPSTREAM, completion

CHAT = '{"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5, %s}'


def post_raw(client, path, body, key=None):
    headers = {"Content-Type": "application/json", **(bearer(key) if key else ADMIN)}
    return client.post(path, data=body, headers=headers)


def completions_sent(upstream):
    return sum(r.method == "POST" for r in upstream.request_history)


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_number_in_completion_is_400_and_never_reaches_upstream(client, upstream, sql, number):
    _, key = create_user(client, credits="1.00", plan="team")
    response = post_raw(client, "/v1/chat/completions", CHAT % f'"temperature": {number}', key)
    error = assert_error(response, 400, "non_finite_number")
    assert error["details"] == {"value": number}
    assert completions_sent(upstream) == 0
    assert sql("SELECT count(*) AS n FROM usage_records")[0]["n"] == 0


def test_non_finite_number_is_400_on_every_json_endpoint(client):
    _, key = create_user(client, credits="1.00")
    assert_error(post_raw(client, "/user/api-keys", '{"name": "k", "x": [1, NaN]}', key), 400, "non_finite_number")
    assert_error(post_raw(client, "/admin/users", '{"username": "u", "n": Infinity}'), 400, "non_finite_number")


def test_the_words_nan_and_infinity_in_strings_are_fine(client, upstream):
    _, key = create_user(client, credits="1.00", plan="team")
    body = CHAT.replace('"hi"', '"NaN and Infinity"') % '"temperature": 0.5'
    assert post_raw(client, "/v1/chat/completions", body, key).status_code == 200
    assert completions_sent(upstream) == 1


def test_error_rate_alert_ignores_bodies_upstream_refused_as_the_clients_fault(make_app, upstream, sql):
    app = make_app(ALERT_ERROR_RATE_PERCENT=5.0, **QUIET)
    client = app.test_client()
    _, key = create_user(client, credits="1.00", plan="enterprise")
    upstream.post(f"{UPSTREAM}/chat/completions", status_code=400, json={"error": {"message": "bad body"}})
    for _ in range(20):
        assert_error(post_raw(client, "/v1/chat/completions", CHAT % '"top_p": 0.5', key), 400, "upstream_bad_request")
    with app.app_context():
        assert evaluate_alert_rules()["error_rate"] == "ok"
    upstream.post(f"{UPSTREAM}/chat/completions", status_code=500, json={"error": {"message": "boom"}})
    for _ in range(2):
        assert_error(post_raw(client, "/v1/chat/completions", CHAT % '"top_p": 0.5', key), 502, "upstream_unavailable")
    upstream.post(f"{UPSTREAM}/chat/completions", json=completion())
    with app.app_context():
        assert evaluate_alert_rules()["error_rate"] == "firing"  # 2 of 22 failed upstream: 9%
    [alert] = sql("SELECT value FROM alerts WHERE rule = 'error_rate'")
    assert alert["value"] == 9.09


def test_error_rate_alert_ignores_input_upstream_moderation_flagged(make_app, upstream):
    app = make_app(ALERT_ERROR_RATE_PERCENT=5.0, **QUIET)
    client = app.test_client()
    _, key = create_user(client, credits="1.00", plan="enterprise")
    flagged = {"error": {"code": 403, "message": "Your input was flagged", "metadata": {"reasons": ["harassment"]}}}
    upstream.post(f"{UPSTREAM}/chat/completions", status_code=403, json=flagged)
    for _ in range(20):
        response = post_raw(client, "/v1/chat/completions", CHAT % '"top_p": 0.5', key)
        assert_error(response, 403, "content_flagged")  # was 502 upstream_unavailable, counted as upstream's
        assert response.get_json()["error"]["message"] == "Your input was flagged"
    with app.app_context():
        assert evaluate_alert_rules()["error_rate"] == "ok"
    upstream.post(f"{UPSTREAM}/chat/completions", status_code=403, json={"error": {"message": "key disabled"}})
    assert_error(post_raw(client, "/v1/chat/completions", CHAT % '"top_p": 0.5', key), 502, "upstream_unavailable")
