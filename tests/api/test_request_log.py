"""The request log: each filter of /admin/requests, a user seeing only their own requests, the
lookup by X-Request-ID, and cursor paging."""

from datetime import UTC, datetime, timedelta

import pytest

from tests.helpers import ADMIN, assert_error, bearer, create_key, create_user
from tests.helpers.request_log import make_traffic, send


def ids(response):
    assert response.status_code == 200, response.get_json()
    return [entry["request_id"] for entry in response.get_json()["requests"]]


@pytest.fixture
def traffic(client, upstream):
    """The shared mix of requests (tests/helpers/request_log.py)."""
    made = make_traffic(client, upstream)
    return made


def test_each_admin_filter_narrows_the_log(client, traffic):
    admin = lambda **query: ids(client.get("/admin/requests", query_string=query, headers=ADMIN))  # noqa: E731
    assert admin()[:6] == ["b-2", "c-1", "b-1", "a-3", "a-2", "a-1"]  # newest first
    assert admin(user_id=traffic["alice"]["id"]) == ["a-3", "a-2", "a-1"]
    assert admin(key_id=traffic["extra"]["id"]) == ["a-2"]
    assert admin(org_id=traffic["org"]["id"]) == ["c-1"]
    assert admin(model="test/free-model") == ["a-3"]
    assert admin(tag="team-b") == ["b-1"]
    assert admin(ip="198.51.100.4") == ["a-2"]
    assert admin(status="error") == ["b-2"]
    assert admin(endpoint="embeddings") == []
    assert admin(min_latency_ms=10**6) == []
    assert admin(start_date=(datetime.now(UTC) + timedelta(hours=1)).isoformat()) == []
    assert len(admin(end_date=datetime.now(UTC).isoformat(), user_id=traffic["bob"]["id"])) == 2


def test_an_entry_says_who_what_and_how_it_went(client, traffic):
    entry = client.get("/admin/requests", query_string={"key_id": traffic["extra"]["id"]}, headers=ADMIN)
    [row] = entry.get_json()["requests"]
    assert (row["user_id"], row["api_key_id"], row["client_ip"], row["endpoint"]) == (
        traffic["alice"]["id"], traffic["extra"]["id"], "198.51.100.4", "chat"
    )  # fmt: skip
    assert row["masked_key"].startswith("gw_live_") and "…" in row["masked_key"]
    assert (row["status"], row["streamed"], row["cache_hit"], row["total_tokens"]) == ("success", False, False, 30)
    assert row["cost"] == "0.0000135" and row["upstream_cost"] is None  # the mock reports no usage.cost
    assert row["latency_ms"] >= row["overhead_ms"] >= 0
    [failed] = client.get("/admin/requests", query_string={"status": "error"}, headers=ADMIN).get_json()["requests"]
    assert (failed["upstream_status"], failed["cost"]) == (500, "0.00")


def test_a_user_sees_only_their_own_requests(client, traffic):
    alice = bearer(traffic["alice_key"])
    assert ids(client.get("/user/requests", headers=alice)) == ["a-3", "a-2", "a-1"]
    assert ids(client.get("/user/requests", query_string={"tag": "team-a"}, headers=alice)) == ["a-1"]
    assert client.get("/user/requests/a-2", headers=alice).get_json()["api_key_id"] == traffic["extra"]["id"]
    assert_error(client.get("/user/requests/b-1", headers=alice), 404, "request_not_found")
    assert client.get("/admin/requests/b-1", headers=ADMIN).get_json()["user_id"] == traffic["bob"]["id"]
    _, reader = create_key(client, traffic["alice_key"], name="chat only", scopes=["chat:write"])
    assert_error(client.get("/user/requests", headers=bearer(reader)), 403, "insufficient_scope")


def test_a_reused_request_id_finds_the_newest_and_says_how_many(client, upstream):
    _, key = create_user(client, credits="1.00", plan="team")
    for tags in ("first", "second"):
        assert send(client, key, "same-id", tags=tags).status_code == 200
    detail = client.get("/user/requests/same-id", headers=bearer(key)).get_json()
    assert (detail["tags"], detail["same_request_id"]) == (["second"], 2)


def test_pages_follow_the_cursor_to_the_end(client, upstream):
    _, key = create_user(client, credits="1.00", plan="team")
    for index in range(5):
        assert send(client, key, f"r-{index}").status_code == 200
    seen, cursor = [], None
    while True:
        query = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get("/user/requests", query_string=query, headers=bearer(key)).get_json()
        seen += [entry["request_id"] for entry in page["requests"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [f"r-{index}" for index in reversed(range(5))]


@pytest.mark.parametrize(
    "query", [{"ip": "not-an-ip"}, {"status": "weird"}, {"limit": 0}, {"min_latency_ms": -1}, {"endpoint": "x"}]
)
def test_bad_filters_are_422(client, query):
    assert_error(client.get("/admin/requests", query_string=query, headers=ADMIN), 422, "validation_error")


def test_bad_dates_and_cursors_are_400(client):
    assert_error(
        client.get("/admin/requests", query_string={"start_date": "yesterday"}, headers=ADMIN), 400, "invalid_date"
    )
    assert_error(client.get("/admin/requests", query_string={"cursor": "xyz"}, headers=ADMIN), 400, "invalid_cursor")


def test_the_log_needs_a_key(client):
    assert_error(client.get("/user/requests"), 401, "unauthorized")
    _, key = create_user(client)
    assert_error(client.get("/admin/requests", headers=bearer(key)), 403, "forbidden")
