"""Model access per key: ``allowed_models`` (ids or globs) on a key, and on its user as a ceiling."""

import pytest

from tests.helpers import ADMIN, assert_error, bearer, create_key, create_user
from tests.helpers.upstream import chat


def listed(client, key):
    response = client.get("/v1/models", headers=bearer(key))
    assert response.status_code == 200
    return {model["id"] for model in response.get_json()["data"]}


def test_a_key_lists_and_uses_only_its_allowed_models(client, upstream, sql):
    _, key = create_user(client, credits="1.00", plan="team")
    limited, limited_key = create_key(client, key, name="openai-only", allowed_models=["openai/*"])
    assert limited["allowed_models"] == ["openai/*"]
    assert listed(client, limited_key) == {"openai/gpt-4o-mini"}
    assert listed(client, key) == {"openai/gpt-4o-mini", "test/free-model"}
    assert chat(client, limited_key).status_code == 200
    before = upstream.call_count
    error = assert_error(chat(client, limited_key, model="test/free-model"), 403, "model_not_allowed")
    assert error["details"] == {"model": "test/free-model", "allowed_models": ["openai/*"]}
    assert upstream.call_count == before  # refused before upstream, nothing held
    assert sql("SELECT count(*) AS n FROM credit_holds") == [{"n": 0}]


def test_the_users_list_is_a_ceiling_over_every_key(client, upstream):
    user, key = create_user(client, credits="1.00", plan="team")
    changed = client.patch(f"/admin/users/{user['id']}", json={"allowed_models": ["test/*"]}, headers=ADMIN)
    assert changed.status_code == 200 and changed.get_json()["allowed_models"] == ["test/*"]
    assert listed(client, key) == {"test/free-model"}
    assert_error(chat(client, key), 403, "model_not_allowed")
    _, wider_key = create_key(client, key, name="wants-openai", allowed_models=["openai/gpt-4o-mini"])
    assert listed(client, wider_key) == set()  # the key's list cannot pass the user's ceiling
    client.patch(f"/admin/users/{user['id']}", json={"allowed_models": []}, headers=ADMIN)
    assert chat(client, key).status_code == 200


def test_a_restricted_key_cannot_widen_any_keys_models(client, upstream):
    _, key = create_user(client)
    _, limited_key = create_key(client, key, name="limited", allowed_models=["openai/*"])
    auth = bearer(limited_key)
    for body in ({"name": "all", "allowed_models": []}, {"name": "more", "allowed_models": ["test/*"]}):
        assert_error(client.post("/user/api-keys", json=body, headers=auth), 403, "model_escalation")
    inherited = client.post("/user/api-keys", json={"name": "like-me"}, headers=auth)
    assert inherited.status_code == 201 and inherited.get_json()["key"]["allowed_models"] == ["openai/*"]
    unrestricted = client.get("/user/api-keys", headers=bearer(key)).get_json()["keys"][-1]
    assert unrestricted["allowed_models"] == []
    path = f"/user/api-keys/{unrestricted['id']}"
    assert_error(client.patch(path, json={"name": "renamed"}, headers=auth), 403, "model_escalation")
    assert_error(client.post(f"{path}/rotate", json={}, headers=auth), 403, "model_escalation")


@pytest.mark.parametrize("patterns", [["bad pattern"], [""], ["x" * 201], ["a"] * 101, "openai/*"])
def test_malformed_model_lists_are_422(client, patterns):
    _, key = create_user(client)
    response = client.post("/user/api-keys", json={"name": "k", "allowed_models": patterns}, headers=bearer(key))
    assert_error(response, 422, "validation_error")
