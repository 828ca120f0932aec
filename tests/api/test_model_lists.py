"""The catalogue reads both of OpenRouter's model lists (``/models`` and ``/embeddings/models``),
merges them with each model's endpoints from its list, and keeps a failed list's previous entries."""

import pytest
from psycopg2.extras import Json

from tests.helpers import ADMIN, assert_error, bearer, create_user
from tests.helpers.upstream import DEAR, EMBEDDER, MODELS, UPSTREAM, chat, completion, mock_model_lists

CHAT_ENDPOINTS = ["chat", "responses", "messages"]
LARGE = {**EMBEDDER, "id": "openai/text-embedding-3-large", "pricing": {"prompt": "0.00000013", "completion": "0"}}
EMBEDDING = {
    "object": "list",
    "data": [{"object": "embedding", "index": 0, "embedding": [0.1]}],
    "model": EMBEDDER["id"],
    "usage": {"prompt_tokens": 5, "total_tokens": 5, "cost": 0.0000001},
}


@pytest.fixture
def upstream(requests_mock):
    """OpenRouter's two lists as it serves them: chat models at /models, the embedder apart."""
    mock_model_lists(requests_mock, MODELS, [EMBEDDER])
    requests_mock.post(f"{UPSTREAM}/chat/completions", json=completion(10, 20))
    requests_mock.post(f"{UPSTREAM}/embeddings", json=EMBEDDING)
    return requests_mock


@pytest.fixture
def key(client):
    return create_user(client, credits="1.00", plan="team")[1]


def listed(client, key):
    """/v1/models as {id: endpoints}."""
    response = client.get("/v1/models", headers=bearer(key))
    assert response.status_code == 200, response.get_json()
    return {model["id"]: model["endpoints"] for model in response.get_json()["data"]}


def refresh(client):
    return client.post("/admin/refresh-models", headers=ADMIN)


def cache_info(client):
    return client.get("/admin/cache-status", headers=ADMIN).get_json()["cache_info"]


def embed(client, key, model=EMBEDDER["id"]):
    return client.post("/v1/embeddings", json={"model": model, "input": "hello"}, headers=bearer(key))


def test_both_lists_are_merged_each_model_serving_the_endpoints_of_its_list(client, upstream, key):
    body = refresh(client).get_json()
    assert body["total_models"] == 3
    assert listed(client, key) == {
        "openai/gpt-4o-mini": CHAT_ENDPOINTS,
        "test/free-model": CHAT_ENDPOINTS,
        EMBEDDER["id"]: ["embeddings"],
    }
    assert embed(client, key).status_code == 200
    assert chat(client, key).status_code == 200
    assert_error(embed(client, key, "openai/gpt-4o-mini"), 404, "model_not_found")
    assert_error(chat(client, key, model=EMBEDDER["id"]), 404, "model_not_found")
    assert {request.path for request in upstream.request_history if request.method == "GET"} == {
        "/api/v1/models",
        "/api/v1/embeddings/models",
    }


def test_an_embeddings_list_entry_serves_embeddings_whatever_its_modalities_say(client, requests_mock, key):
    mock_model_lists(requests_mock, MODELS, [{field: v for field, v in EMBEDDER.items() if field != "architecture"}])
    assert listed(client, key)[EMBEDDER["id"]] == ["embeddings"]


def test_a_failed_embeddings_list_keeps_its_previous_entries_and_the_new_chat_list_is_stored(client, upstream, key):
    refresh(client)
    before = cache_info(client)
    upstream.get(f"{UPSTREAM}/models", json={"data": [*MODELS["data"], DEAR]})
    upstream.get(f"{UPSTREAM}/embeddings/models", status_code=503)
    failed = refresh(client)
    assert_error(failed, 502, "upstream_unavailable")
    assert "/embeddings/models" in failed.get_json()["error"]["message"]
    assert listed(client, key) == {
        "openai/gpt-4o-mini": CHAT_ENDPOINTS,
        "test/free-model": CHAT_ENDPOINTS,
        DEAR["id"]: CHAT_ENDPOINTS,  # the chat list that was read
        EMBEDDER["id"]: ["embeddings"],  # kept from the previous refresh
    }
    assert embed(client, key).status_code == 200
    info = cache_info(client)
    assert info["is_stale"] and info["refresh_failures"] == 1 and info["total_cached_models"] == 4
    assert info["last_error"].startswith("GET /embeddings/models: ")
    # a failed refresh: the catalogue's age and refresh count stay, so it is retried as soon as any
    assert (info["last_refresh_at"], info["refresh_count"]) == (before["last_refresh_at"], before["refresh_count"])


def test_a_failed_chat_list_keeps_its_previous_entries_and_the_new_embeddings_list_is_stored(client, upstream, key):
    refresh(client)
    upstream.get(f"{UPSTREAM}/models", status_code=500)
    upstream.get(f"{UPSTREAM}/embeddings/models", json={"data": [LARGE]})
    assert_error(refresh(client), 502, "upstream_unavailable")
    assert listed(client, key) == {
        "openai/gpt-4o-mini": CHAT_ENDPOINTS,
        "test/free-model": CHAT_ENDPOINTS,
        LARGE["id"]: ["embeddings"],  # the embedder no longer listed is gone, its list having been read
    }
    assert chat(client, key).status_code == 200
    assert_error(embed(client, key), 404, "model_not_found")
    assert cache_info(client)["last_error"].startswith("GET /models: ")


def test_when_both_lists_fail_nothing_changes_but_the_failure_is_recorded(client, upstream, key, sql):
    refresh(client)
    stored = sql("SELECT models, version FROM model_catalog")[0]
    upstream.get(f"{UPSTREAM}/models", status_code=503)
    upstream.get(f"{UPSTREAM}/embeddings/models", status_code=503)
    assert_error(refresh(client), 502, "upstream_unavailable")
    assert sql("SELECT models, version FROM model_catalog")[0] == stored
    info = cache_info(client)
    assert info["last_error"].startswith("GET /models: ") and "; GET /embeddings/models: " in info["last_error"]
    assert info["refresh_failures"] == 1
    assert len(listed(client, key)) == 3


def test_a_catalogue_is_fresh_only_once_every_list_was_read(client, upstream, key):
    upstream.get(f"{UPSTREAM}/embeddings/models", status_code=503)
    assert_error(chat(client, key), 502, "upstream_unavailable")  # never fetched: half a list is no list
    assert not cache_info(client)["has_data"]
    upstream.get(f"{UPSTREAM}/embeddings/models", json={"data": [EMBEDDER]})
    assert refresh(client).status_code == 200
    assert chat(client, key).status_code == 200 and embed(client, key).status_code == 200
    info = cache_info(client)
    assert info["is_valid"] and not info["is_stale"] and info["refresh_count"] == 1


def test_entries_stored_before_endpoints_were_recorded_serve_the_chat_endpoints(client, upstream, key, sql):
    refresh(client)
    old = {"id": "openai/gpt-4o-mini", "name": "GPT", "pricing": {"prompt": "0.00000015", "completion": "0.0000006"}}
    sql("UPDATE model_catalog SET models = %s, version = version + 1", (Json([old]),))
    assert listed(client, key) == {"openai/gpt-4o-mini": CHAT_ENDPOINTS}
    assert chat(client, key).status_code == 200
    upstream.get(f"{UPSTREAM}/models", status_code=503)  # a list that fails keeps such entries too
    assert_error(refresh(client), 502, "upstream_unavailable")
    assert listed(client, key) == {"openai/gpt-4o-mini": CHAT_ENDPOINTS, EMBEDDER["id"]: ["embeddings"]}
