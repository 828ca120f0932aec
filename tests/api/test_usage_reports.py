"""Spend reports from the daily rollups: /admin/reports/usage (JSON and CSV) and /user/usage."""

import csv
import io
from datetime import UTC, datetime, time, timedelta

from ops_gateway.core.migrations import SQL_DIR
from tests.helpers import ADMIN, assert_error, bearer, create_key, create_user

TODAY = datetime.now(UTC).date()
DAY1, DAY2 = TODAY - timedelta(days=3), TODAY - timedelta(days=2)
BACKFILL = next(SQL_DIR.glob("*_report_rollups_by_endpoint.sql"))


def insert_usage(
    sql, user_id, key_id, model, day, tags=(), cost="0.01", status="success", latency=100, minute=0, **endpoint
):
    """One usage record; ``endpoint`` may give its endpoint (default chat) and served_model."""
    at = datetime.combine(day, time(12, minute), UTC)
    sql(
        "INSERT INTO usage_records (request_id, user_id, api_key_id, model, prompt_tokens, completion_tokens,"
        " total_tokens, cost, status, latency_ms, created_at, tags, endpoint, served_model)"
        " VALUES ('r', %s, %s, %s, 10, 5, 15, %s, %s, %s, %s, %s, %s, %s)",
        (user_id, key_id, model, cost, status, latency, at, list(tags), endpoint.get("endpoint", "chat"),
         endpoint.get("served_model")),
    )  # fmt: skip


def roll_up(client):
    response = client.post("/admin/jobs/usage_rollup/run", headers=ADMIN)
    assert response.get_json()["status"] == "success", response.get_json()


def report(client, headers=ADMIN, path="/admin/reports/usage", **query):
    response = client.get(path, query_string=query, headers=headers)
    assert response.status_code == 200, response.get_json()
    return response


def seed(client, sql):
    """Two users; alice has two keys; tagged and untagged requests on two days and an error."""
    alice, alice_key = create_user(client, email="alice@example.com")
    bob, _ = create_user(client, email="bob@example.com")
    [alice_default] = client.get("/user/api-keys", headers=bearer(alice_key)).get_json()["keys"]
    ci, _ = create_key(client, alice_key, name="ci")
    [bob_default] = client.get(f"/admin/users/{bob['id']}/api-keys", headers=ADMIN).get_json()["keys"]
    insert_usage(sql, alice["id"], alice_default["id"], "m/a", DAY1, ["team-a", "feature-x"], "0.10", latency=100)
    insert_usage(sql, alice["id"], alice_default["id"], "m/a", DAY1, ["team-a"], "0.20", "upstream_error", 300, 1)
    insert_usage(sql, alice["id"], ci["id"], "m/b", DAY2, [], "0.05", minute=2)
    insert_usage(sql, bob["id"], bob_default["id"], "m/a", DAY2, ["team-b"], "1.5", minute=3)
    insert_usage(sql, bob["id"], bob_default["id"], "m/a", TODAY - timedelta(days=90), [], "9")  # outside the range
    roll_up(client)
    return alice, alice_key, bob, alice_default, ci, bob_default


def test_admin_report_groups_by_user_and_day_in_order(client, sql):
    alice, _, bob, *_ = seed(client, sql)
    body = report(client, group_by="user,day", start_date=str(DAY1), end_date=str(TODAY)).get_json()
    assert body["group_by"] == ["user", "day"] and body["rolled_up_at"]
    assert (body["start_date"], body["end_date"]) == (str(DAY1), str(TODAY))
    assert [(g["email"], g["day"], g["requests"], g["errors"], g["cost"]) for g in body["groups"]] == [
        ("alice@example.com", str(DAY1), 2, 1, "0.30"),
        ("alice@example.com", str(DAY2), 1, 0, "0.05"),
        ("bob@example.com", str(DAY2), 1, 0, "1.50"),
    ]
    first = body["groups"][0]
    assert first["user_id"] == alice["id"] and first["avg_latency_ms"] == 200
    assert (first["prompt_tokens"], first["completion_tokens"]) == (20, 10)
    assert "model" not in first and "tag" not in first


def test_admin_report_groups_by_key_and_model(client, sql):
    _, _, _, alice_default, ci, bob_default = seed(client, sql)
    body = report(client, group_by="model,key", start_date=str(DAY1)).get_json()
    groups = [(g["model"], g["api_key_id"], g["key_name"], g["requests"], g["cost"]) for g in body["groups"]]
    assert groups == sorted(groups, key=lambda g: (g[0], g[1]))
    assert set(groups) == {
        ("m/a", alice_default["id"], "default", 2, "0.30"),
        ("m/a", bob_default["id"], "default", 1, "1.50"),
        ("m/b", ci["id"], "ci", 1, "0.05"),
    }
    masked = {g["api_key_id"]: g["masked_key"] for g in body["groups"]}
    assert masked[alice_default["id"]] == alice_default["masked_key"] and masked[ci["id"]] == ci["masked_key"]


def test_tag_groups_count_a_request_under_each_tag_and_untagged_as_null(client, sql):
    seed(client, sql)
    body = report(client, group_by="tag", start_date=str(DAY1)).get_json()
    assert [(g["tag"], g["requests"], g["cost"]) for g in body["groups"]] == [
        ("feature-x", 1, "0.10"),
        ("team-a", 2, "0.30"),
        ("team-b", 1, "1.50"),
        (None, 1, "0.05"),
    ]
    by_user_tag = report(client, group_by="tag,user", start_date=str(DAY1)).get_json()["groups"]
    assert [(g["tag"], g["email"]) for g in by_user_tag][:2] == [
        ("feature-x", "alice@example.com"),
        ("team-a", "alice@example.com"),
    ]


def test_the_range_is_whole_utc_days_both_included(client, sql):
    seed(client, sql)
    only_day1 = report(client, group_by="day", start_date=str(DAY1), end_date=str(DAY1)).get_json()["groups"]
    assert [(g["day"], g["requests"]) for g in only_day1] == [(str(DAY1), 2)]
    default_range = report(client, group_by="day").get_json()  # the last 30 days
    assert default_range["start_date"] == str(TODAY - timedelta(days=29))
    assert sum(g["requests"] for g in default_range["groups"]) == 4


def test_csv_report_has_a_header_money_strings_and_defused_cells(client, sql):
    alice, alice_key, *_ = seed(client, sql)
    create_key(client, alice_key, name="=HYPERLINK(1)")
    [evil] = [
        k for k in client.get("/user/api-keys", headers=bearer(alice_key)).get_json()["keys"] if k["name"][0] == "="
    ]
    insert_usage(sql, alice["id"], evil["id"], "m/a", DAY2, ["+cmd"], "0.0000024")
    roll_up(client)
    response = report(client, group_by="key,tag", start_date=str(DAY1), format="csv")
    assert response.content_type.startswith("text/csv")
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert rows[0] == [
        "api_key_id", "key_name", "masked_key", "tag", "requests", "errors", "prompt_tokens", "completion_tokens",
        "cost", "avg_latency_ms",
    ]  # fmt: skip
    [evil_row] = [row for row in rows[1:] if row[0] == str(evil["id"])]
    assert evil_row[1] == "'=HYPERLINK(1)" and evil_row[3] == "'+cmd" and evil_row[8] == "0.0000024"
    untagged = [row for row in rows[1:] if row[3] == ""]
    assert untagged and untagged[0][8] == "0.05"


def test_report_arguments_are_validated(client):
    cases = [
        ({"group_by": "user,region"}, 400, "invalid_group_by"),
        ({"group_by": "day,day"}, 400, "invalid_group_by"),
        ({"group_by": ""}, 400, "invalid_group_by"),
        ({"start_date": "2026-13-01"}, 400, "invalid_date"),
        ({"start_date": "2026-02-02", "end_date": "2026-02-01"}, 400, "invalid_date_range"),
        ({"start_date": "2025-01-01", "end_date": "2026-01-02"}, 400, "date_range_too_long"),
        ({"format": "xml"}, 422, "validation_error"),
    ]
    for query, status, code in cases:
        assert_error(client.get("/admin/reports/usage", query_string=query, headers=ADMIN), status, code)
    assert (
        client.get("/admin/reports/usage?start_date=2025-01-01&end_date=2026-01-01", headers=ADMIN).status_code == 200
    )


def test_reports_need_the_admin_key_and_user_usage_a_usage_scope(client):
    _, key = create_user(client)
    assert_error(client.get("/admin/reports/usage"), 401, "unauthorized")
    assert_error(client.get("/admin/reports/usage", headers=bearer(key)), 403, "forbidden")
    assert_error(client.get("/user/usage"), 401, "unauthorized")
    _, narrow = create_key(client, key, name="narrow", scopes=["chat:write"])
    assert_error(client.get("/user/usage", headers=bearer(narrow)), 403, "insufficient_scope")


def test_user_usage_shows_only_the_callers_keys_and_their_requests_paged(client, sql):
    alice, alice_key, _, alice_default, ci, _ = seed(client, sql)
    body = report(client, bearer(alice_key), "/user/usage", group_by="key", start_date=str(DAY1), limit=2).get_json()
    assert {(g["api_key_id"], g["requests"], g["cost"]) for g in body["groups"]} == {
        (alice_default["id"], 2, "0.30"),
        (ci["id"], 1, "0.05"),
    }
    first_page = body["requests"]
    assert [(r["model"], r["cost"], r["status"]) for r in first_page] == [
        ("m/b", "0.05", "success"),
        ("m/a", "0.20", "upstream_error"),
    ]
    assert first_page[1]["latency_ms"] == 300 and first_page[1]["total_tokens"] == 15
    assert first_page[1]["tags"] == ["team-a"]
    rest = report(client, bearer(alice_key), "/user/usage", start_date=str(DAY1), limit=2, cursor=body["next_cursor"])
    assert [r["cost"] for r in rest.get_json()["requests"]] == ["0.10"]
    assert rest.get_json()["next_cursor"] is None
    assert_error(client.get("/user/usage?group_by=user", headers=bearer(alice_key)), 400, "invalid_group_by")
    assert_error(client.get("/user/usage?cursor=zz", headers=bearer(alice_key)), 400, "invalid_cursor")


def test_rerunning_the_rollup_gives_the_same_report(client, sql):
    seed(client, sql)
    before = report(client, group_by="user,key,model,day,tag", start_date=str(DAY1)).get_json()["groups"]
    roll_up(client)
    assert report(client, group_by="user,key,model,day,tag", start_date=str(DAY1)).get_json()["groups"] == before
    assert len(before) == 4  # (alice, default, m/a, day 1) splits into feature-x and team-a


def seed_endpoints(client, sql):
    """Alice's chat (one answered by a fallback), embeddings and responses requests on DAY1 and DAY2."""
    alice, alice_key = create_user(client, email="alice@example.com")
    [key] = client.get("/user/api-keys", headers=bearer(alice_key)).get_json()["keys"]
    insert_usage(sql, alice["id"], key["id"], "m/a", DAY1, ["rag"], "0.10")
    insert_usage(sql, alice["id"], key["id"], "m/a", DAY1, [], "0.30", minute=1, served_model="m/b")
    insert_usage(sql, alice["id"], key["id"], "m/embed", DAY1, ["rag"], "0.02", minute=2, endpoint="embeddings")
    insert_usage(sql, alice["id"], key["id"], "m/embed", DAY2, [], "0.04", minute=3, endpoint="embeddings")
    insert_usage(sql, alice["id"], key["id"], "m/a", DAY2, ["agent"], "0.50", minute=4, endpoint="responses")
    roll_up(client)
    return alice, alice_key, key


def test_each_endpoints_usage_lands_in_its_own_rollup_rows(client, sql):
    alice, *_ = seed_endpoints(client, sql)
    rows = sql(
        "SELECT day, model, endpoint, requests, cost FROM usage_key_daily WHERE user_id = %s ORDER BY 1, 2, 3",
        (alice["id"],),
    )
    assert [(r["day"], r["model"], r["endpoint"], r["requests"], str(r["cost"])) for r in rows] == [
        (DAY1, "m/a", "chat", 1, "0.1000000000"),
        (DAY1, "m/b", "chat", 1, "0.3000000000"),  # the model that answered is the one billed
        (DAY1, "m/embed", "embeddings", 1, "0.0200000000"),
        (DAY2, "m/a", "responses", 1, "0.5000000000"),
        (DAY2, "m/embed", "embeddings", 1, "0.0400000000"),
    ]
    tagged = sql("SELECT endpoint, tag, requests FROM usage_tag_daily WHERE tag IS NOT NULL ORDER BY 1, 2")
    assert [(r["endpoint"], r["tag"], r["requests"]) for r in tagged] == [
        ("chat", "rag", 1),
        ("embeddings", "rag", 1),
        ("responses", "agent", 1),
    ]


def test_admin_report_groups_and_filters_by_endpoint_in_json_and_csv(client, sql):
    seed_endpoints(client, sql)
    body = report(client, group_by="endpoint", start_date=str(DAY1)).get_json()
    assert body["endpoint"] is None
    assert [(g["endpoint"], g["requests"], g["cost"]) for g in body["groups"]] == [
        ("chat", 2, "0.40"),
        ("embeddings", 2, "0.06"),
        ("responses", 1, "0.50"),
    ]
    by_day = report(client, group_by="day,endpoint", start_date=str(DAY1), endpoint="embeddings").get_json()
    assert by_day["endpoint"] == "embeddings"
    assert [(g["day"], g["endpoint"], g["cost"]) for g in by_day["groups"]] == [
        (str(DAY1), "embeddings", "0.02"),
        (str(DAY2), "embeddings", "0.04"),
    ]
    tags = report(client, group_by="tag", start_date=str(DAY1), endpoint="chat").get_json()["groups"]
    assert [(g["tag"], g["requests"]) for g in tags] == [("rag", 1), (None, 1)]
    response = report(client, group_by="endpoint,model", start_date=str(DAY1), format="csv")
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert rows[0][:3] == ["endpoint", "model", "requests"]
    assert [row[:3] for row in rows[1:]] == [
        ["chat", "m/a", "1"],
        ["chat", "m/b", "1"],
        ["embeddings", "m/embed", "2"],
        ["responses", "m/a", "1"],
    ]
    for query in ({"endpoint": "images"}, {"endpoint": ""}):
        assert_error(client.get("/admin/reports/usage", query_string=query, headers=ADMIN), 422, "validation_error")


def test_user_usage_groups_by_endpoint_and_shows_each_requests_endpoint_and_served_model(client, sql):
    _, alice_key, _ = seed_endpoints(client, sql)
    body = report(client, bearer(alice_key), "/user/usage", group_by="endpoint", start_date=str(DAY1)).get_json()
    assert [(g["endpoint"], g["requests"]) for g in body["groups"]] == [
        ("chat", 2),
        ("embeddings", 2),
        ("responses", 1),
    ]
    assert [(r["endpoint"], r["model"], r["served_model"]) for r in body["requests"]] == [
        ("responses", "m/a", None),
        ("embeddings", "m/embed", None),
        ("embeddings", "m/embed", None),
        ("chat", "m/a", "m/b"),
        ("chat", "m/a", None),
    ]
    chat_only = report(client, bearer(alice_key), "/user/usage", start_date=str(DAY1), endpoint="chat").get_json()
    assert [g["requests"] for g in chat_only["groups"]] == [2]
    assert {r["endpoint"] for r in chat_only["requests"]} == {"chat"} and len(chat_only["requests"]) == 2


def test_the_endpoint_backfill_rewrites_the_days_since_endpoints_were_recorded(client, sql):
    seed_endpoints(client, sql)
    sql(
        "UPDATE schema_migrations SET applied_at = %s WHERE name = '0018_endpoints.sql'",
        (datetime.combine(DAY2, time(9), UTC),),
    )
    sql("UPDATE usage_key_daily SET endpoint = 'chat', model = 'stale'")  # as a job unaware of endpoints wrote them
    sql("UPDATE usage_tag_daily SET endpoint = 'chat', model = 'stale'")
    sql(BACKFILL.read_text())
    by_day = sql(
        "SELECT day, array_agg(DISTINCT endpoint ORDER BY endpoint) AS endpoints FROM usage_key_daily GROUP BY 1"
    )
    assert {r["day"]: r["endpoints"] for r in by_day} == {DAY1: ["chat"], DAY2: ["embeddings", "responses"]}
    assert sql("SELECT DISTINCT model FROM usage_tag_daily WHERE day = %s ORDER BY 1", (DAY2,)) == [
        {"model": "m/a"},
        {"model": "m/embed"},
    ]
    assert sql("SELECT DISTINCT model FROM usage_key_daily WHERE day = %s", (DAY1,)) == [{"model": "stale"}]


def test_average_latency_is_rounded_to_two_decimals_in_csv_and_json(client, sql):
    user, key = create_user(client)
    [default] = client.get("/user/api-keys", headers=bearer(key)).get_json()["keys"]
    for minute, latency in enumerate((100.123, 200.4567, 50)):
        insert_usage(sql, user["id"], default["id"], "m/a", DAY1, latency=latency, minute=minute)
    roll_up(client)
    response = report(client, group_by="user", start_date=str(DAY1), end_date=str(DAY1), format="csv")
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert rows[1][rows[0].index("avg_latency_ms")] == "116.86"  # 350.5797 / 3
    [group] = report(client, group_by="user", start_date=str(DAY1), end_date=str(DAY1)).get_json()["groups"]
    assert group["avg_latency_ms"] == 116.86
