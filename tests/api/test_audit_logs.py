"""GET /user/api-keys/audit-logs and /admin/audit-logs: newest first, filtered, cursor-paginated."""

import base64
import json

from tests.helpers import ADMIN, assert_error, bearer, create_key, create_user

USER_LOGS = "/user/api-keys/audit-logs"


def logs(client, key, query=""):
    """GET the caller's audit logs; assert 200 and return the body."""
    response = client.get(f"{USER_LOGS}?{query}", headers=bearer(key))
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def make_history(client):
    """A user with create, update, rotate and delete entries, and another user with their own."""
    user, key = create_user(client)
    extra, _ = create_key(client, key, name="extra")
    client.patch(f"/user/api-keys/{extra['id']}", json={"name": "renamed"}, headers=bearer(key))
    rotated = client.post(f"/user/api-keys/{extra['id']}/rotate", json={}, headers=bearer(key)).get_json()
    client.delete(f"/user/api-keys/{rotated['key']['id']}", headers=bearer(key))
    other, other_key = create_user(client)
    create_key(client, other_key, name="theirs")
    return user, key, extra, other, other_key


def test_user_sees_only_their_own_entries_newest_first(client):
    user, key, extra, other, _ = make_history(client)
    body = logs(client, key)
    assert (body["status"], body["total_logs"], body["next_cursor"]) == ("success", 6, None)
    assert [e["action"] for e in body["logs"]] == ["delete", "rotate", "update", "create", "create", "user_created"]
    assert {e["user_id"] for e in body["logs"]} == {user["id"]}
    newest = body["logs"][0]
    assert newest["actor"] == f"user:{user['id']}" and newest["ip"] == "127.0.0.1" and newest["request_id"]
    times = [e["created_at"] for e in body["logs"]]
    assert times == sorted(times, reverse=True) and all(t.endswith("+00:00") for t in times)


def test_filters_by_key_and_action(client):
    _, key, extra, _, other_key = make_history(client)
    by_key = logs(client, key, f"key_id={extra['id']}")
    assert [e["action"] for e in by_key["logs"]] == ["rotate", "update", "create"]
    assert by_key["total_logs"] == 3
    assert [e["action"] for e in logs(client, key, "action=create")["logs"]] == ["create", "create"]
    assert logs(client, other_key, f"key_id={extra['id']}")["logs"] == []  # not theirs


def test_date_range_accepts_z_offsets_and_a_decoded_plus(client, sql):
    user, key = create_user(client)
    for name in ("a", "b"):
        create_key(client, key, name=name)
    # Pin the four entries to 00:00, 01:00, 02:00 and 03:00 UTC.
    sql(
        "UPDATE api_key_audit_logs SET created_at = '2026-01-01T00:00:00Z'::timestamptz"
        " + (id - (SELECT min(id) FROM api_key_audit_logs WHERE user_id = %s)) * interval '1 hour'"
        " WHERE user_id = %s",
        (user["id"], user["id"]),
    )
    cases = {
        "start_date=2026-01-01T01:00:00Z": 3,
        "end_date=2026-01-01T01:00:00Z": 2,
        "start_date=2026-01-01T01:00:00Z&end_date=2026-01-01T02:00:00Z": 2,
        "start_date=2026-01-01T04:00:00%2B02:00": 2,  # 02:00 UTC written with an offset
        "start_date=2026-01-01T03:00:00+02:00": 3,  # the "+" arrives as a space
        "start_date=2026-01-01T03:00:00+0200": 3,
        "start_date=2026-01-01T03:00:00+02": 3,
        "end_date=2025-12-31T19:00:00-05:00": 1,
        "start_date=2026-01-01T02:30:00.5Z": 1,
        "start_date=2026-01-02T00:00:00Z": 0,
    }
    for query, expected in cases.items():
        assert logs(client, key, query)["total_logs"] == expected, query


def test_bad_dates_are_400_naming_the_parameter(client):
    _, key = create_user(client)
    for parameter, value in (("start_date", "yesterday"), ("end_date", "2026-13-01T00:00:00Z"), ("start_date", "")):
        response = client.get(f"{USER_LOGS}?{parameter}={value}", headers=bearer(key))
        if value == "":
            assert response.status_code == 200  # empty means "no filter"
            continue
        error = assert_error(response, 400, "invalid_date")
        assert error["details"]["parameter"] == parameter and parameter in error["message"]
    reversed_range = client.get(
        f"{USER_LOGS}?start_date=2026-02-01T00:00:00Z&end_date=2026-01-01T00:00:00Z", headers=bearer(key)
    )
    assert assert_error(reversed_range, 400, "invalid_date_range")["details"]["parameter"] == "start_date"
    assert_error(client.get("/admin/audit-logs?end_date=soon", headers=ADMIN), 400, "invalid_date")


def test_cursor_pages_through_every_entry_exactly_once(client):
    _, key = create_user(client)
    for number in range(6):
        create_key(client, key, name=f"k{number}")
    everything = logs(client, key)["logs"]
    assert len(everything) == 8
    seen, cursor = [], None
    while True:
        page = logs(client, key, "limit=3" + (f"&cursor={cursor}" if cursor else ""))
        assert page["total_logs"] == 8 and len(page["logs"]) <= 3
        seen += page["logs"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [e["id"] for e in seen] == [e["id"] for e in everything]


def test_invalid_limit_key_id_and_cursor_are_rejected(client):
    _, key = create_user(client)
    for query in ("limit=0", "limit=1001", "limit=x", "key_id=abc"):
        assert_error(client.get(f"{USER_LOGS}?{query}", headers=bearer(key)), 422, "validation_error")
    assert len(logs(client, key, "limit=1000")["logs"]) == 2
    assert len(logs(client, key, "limit=1")["logs"]) == 1
    forged = [
        "not-a-cursor",
        base64.urlsafe_b64encode(b'["2026-01-01T00:00:00+00:00", "x"]').decode(),
        base64.urlsafe_b64encode(b'{"a": 1}').decode(),
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
        base64.urlsafe_b64encode(json.dumps(["2026-01-01T00:00:00Z", 1, 2]).encode()).decode(),
    ]
    for cursor in forged:
        response = client.get(f"{USER_LOGS}?cursor={cursor}", headers=bearer(key))
        assert assert_error(response, 400, "invalid_cursor")["details"] == {"parameter": "cursor"}, cursor


def test_admin_sees_every_user_and_filters_by_user(client):
    user, key, extra, other, _ = make_history(client)
    client.get("/user/balance", headers=bearer("gw_live_" + "z" * 43))  # anonymous auth failure
    response = client.get("/admin/audit-logs", headers=ADMIN)
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "success" and body["total_logs"] == 10
    assert {e["user_id"] for e in body["logs"]} == {user["id"], other["id"], None}
    assert body["logs"][0]["action"] == "auth_failure"
    only_other = client.get(f"/admin/audit-logs?user_id={other['id']}", headers=ADMIN).get_json()
    assert [e["action"] for e in only_other["logs"]] == ["create", "create", "user_created"]
    failures = client.get("/admin/audit-logs?action=auth_failure", headers=ADMIN).get_json()
    assert failures["total_logs"] == 1 and failures["logs"][0]["details"]["reason"] == "unknown_key"
    assert_error(client.get("/admin/audit-logs?user_id=me", headers=ADMIN), 422, "validation_error")


def test_totals_stay_exact_for_ranges_with_whole_and_partial_days(client, sql):
    # Rows every 5 hours from 2025-12-29T00:00Z for 8 days (two fall on midnights): the totals of
    # whole days come from counters, partial days are counted row by row; both must add up exactly.
    [u1, u2] = [
        r["id"] for r in sql("INSERT INTO users (email, plan) VALUES ('a@x.io', 'dev'), ('b@x.io', 'dev') RETURNING id")
    ]
    [k1, k2] = [
        r["id"]
        for r in sql(
            "INSERT INTO api_keys (user_id, name, key_hash, prefix, last4)"
            " VALUES (%s, 'a', 'h1', 'gw_live_a', 'aaaa'), (%s, 'b', 'h2', 'gw_live_b', 'bbbb') RETURNING id",
            (u1, u2),
        )
    ]
    sql(
        "INSERT INTO api_key_audit_logs (user_id, api_key_id, action, actor, created_at)"
        " SELECT (ARRAY[NULL, %(u1)s, %(u1)s, %(u1)s, %(u2)s])[1 + g %% 5],"
        "        (ARRAY[NULL, NULL, %(k1)s, %(k1)s, %(k2)s])[1 + g %% 5],"
        "        (ARRAY['auth_failure', 'user_updated', 'create', 'rotate', 'create'])[1 + g %% 5], 'test',"
        "        '2025-12-29T00:00:00Z'::timestamptz + g * interval '5 hours'"
        " FROM generate_series(0, 40) g",
        {"u1": u1, "u2": u2, "k1": k1, "k2": k2},
    )
    filters = ("", "action=create", f"user_id={u1}", f"user_id={u1}&action=rotate", f"key_id={k1}", f"user_id={u2}")
    filters += (f"user_id={u1}&key_id={k2}",)  # nothing matches
    ranges = (
        "",
        "start_date=2026-01-01T00:00:00Z",
        "start_date=2025-12-31T13:30:00Z",
        "end_date=2026-01-03T00:00:00Z",  # a row at exactly the (inclusive) end
        "end_date=2026-01-02T07:00:00%2B02:00",
        "start_date=2025-12-30T10:00:00Z&end_date=2026-01-04T15:00:00Z",
        "start_date=2026-01-01T00:00:00Z&end_date=2026-01-02T00:00:00Z",
        "start_date=2026-01-03T00:00:00Z&end_date=2026-01-03T00:00:00Z",
        "start_date=2025-12-29T01:00:00Z&end_date=2025-12-30T23:00:00Z",  # no whole day inside
    )
    seen = set()
    for query in (f"{f}&{r}&limit=1000" for f in filters for r in ranges):
        body = client.get(f"/admin/audit-logs?{query}", headers=ADMIN).get_json()
        assert body["total_logs"] == len(body["logs"]), query  # the page is every matching row
        seen.add(body["total_logs"])
    assert len(seen) > 10  # the cases really differ
