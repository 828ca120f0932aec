"""Hostile input gets the right 4xx, never a 500: wrong-typed content, deep nesting, NUL bytes and
unicode digits (issue 15 #8). JSON envelope on the API, an HTML page on the dashboard."""

import pytest

from tests.helpers import ADMIN, assert_error, bearer, create_user
from tests.helpers.dashboard import sign_in

NUL = "a\u0000b"


def chat(content):
    return {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": content}], "max_tokens": 5}


@pytest.mark.parametrize(
    "content", [[{"type": "text", "text": 5}], True, 5, [{"type": "text", "text": ["x"]}], ["text"], {"a": 1}]
)
def test_wrongly_typed_message_content_is_a_validation_error(client, upstream, content):
    _, key = create_user(client, credits="1.00")
    for headers in ({}, bearer(key)):
        response = client.post("/v1/chat/completions", json=chat(content), headers=headers)
        assert response.status_code in (400, 401, 422), response.get_json()
        assert response.get_json()["error"]["status"] == response.status_code
    assert_error(client.post("/v1/chat/completions", json=chat(content), headers=bearer(key)), 422, "validation_error")


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/user/api-keys", "/admin/users"])
def test_a_body_nested_100000_levels_deep_is_400(client, upstream, path):
    _, key = create_user(client, credits="1.00")
    body = "[" * 100_000 + "]" * 100_000
    for wrapped in (body, '{"name": ' + body + "}"):
        headers = {"Content-Type": "application/json", **(ADMIN if path.startswith("/admin") else bearer(key))}
        error = assert_error(client.post(path, data=wrapped, headers=headers), 400, "too_deeply_nested")
        assert error["details"]["max_depth"] >= 32


def test_brackets_inside_strings_do_not_count_as_nesting(client):
    _, key = create_user(client, credits="1.00")
    response = client.post("/user/api-keys", json={"name": "[" * 5000}, headers=bearer(key))
    assert response.status_code in (201, 422), response.get_json()  # the name's own length rule, not nesting


def test_a_nul_byte_in_a_json_body_is_400(client, upstream):
    user, key = create_user(client, credits="1.00")
    uid = user["id"]
    [key_id] = [k["id"] for k in client.get("/user/api-keys", headers=bearer(key)).get_json()["keys"]]
    cases = [
        ("POST", "/user/api-keys", {"name": NUL}, bearer(key)),
        ("PATCH", f"/user/api-keys/{key_id}", {"name": NUL}, bearer(key)),
        ("POST", "/admin/users", {"email": "nul@example.com", "username": NUL}, ADMIN),
        ("POST", "/admin/users", {"email": "nul@example.com", "plan": NUL}, ADMIN),
        ("PATCH", f"/admin/users/{uid}", {"plan": NUL}, ADMIN),
        ("POST", f"/admin/users/{uid}/credits", {"amount": "1.00", "reason": NUL}, ADMIN),
        ("POST", "/v1/chat/completions", chat(NUL), bearer(key)),
        ("POST", "/admin/users", {NUL: 1}, ADMIN),
    ]
    for method, path, body, headers in cases:
        error = assert_error(client.open(path, method=method, json=body, headers=headers), 400, "nul_character")
        assert error["details"] == {"location": "json"}, (method, path)


def test_an_escaped_backslash_before_u0000_is_not_a_nul(client):
    _, key = create_user(client, credits="1.00")
    response = client.post("/user/api-keys", json={"name": "back\\u0000slash"}, headers=bearer(key))
    assert response.status_code == 201, response.get_json()


@pytest.mark.parametrize(
    "path",
    [
        "/user/api-keys/audit-logs?action=a%00b",
        "/admin/users?email=a%00b",
        "/admin/security-events?type=a%00b",
        "/admin/audit-logs?action=a%00b",
    ],
)
def test_a_nul_byte_in_a_query_string_is_400(client, path):
    _, key = create_user(client, credits="1.00")
    headers = bearer(key) if path.startswith("/user") else ADMIN
    error = assert_error(client.get(path, headers=headers), 400, "nul_character")
    assert error["details"] == {"location": "query"}


def test_a_nul_byte_in_a_form_body_is_400(client):
    response = client.post("/dashboard/login", data={"api_key": NUL, "csrf_token": NUL})
    assert response.status_code == 400
    assert response.mimetype == "text/html"


@pytest.mark.parametrize(
    "path",
    [
        "/dashboard/users?q=a%00b",
        "/dashboard/audit?action=a%00b",
        "/dashboard/users?page=%C2%B2",
        "/dashboard/users?q=%C2%B2",
        "/dashboard/audit?user_id=%C2%B2",
        "/dashboard/audit?key_id=%C2%B9%C2%B2",
    ],
)
def test_dashboard_pages_answer_bad_input_with_an_html_4xx_or_ignore_it(client, path):
    assert sign_in(client).status_code == 302
    response = client.get(path)
    assert response.status_code in (200, 400), response.get_data(as_text=True)[:300]
    assert response.mimetype == "text/html"


def test_superscript_digits_are_ignored_as_a_page_number(client):
    assert sign_in(client).status_code == 302
    response = client.get("/dashboard/users?page=%C2%B2")
    assert response.status_code == 200


def test_a_nul_byte_on_the_dashboard_is_an_html_400(client):
    assert sign_in(client).status_code == 302
    response = client.get("/dashboard/users?q=a%00b")
    assert response.status_code == 400 and response.mimetype == "text/html"
    assert "NUL" in response.get_data(as_text=True)
