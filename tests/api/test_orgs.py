"""Organizations: the admin routes, an org key's money path (org balance, org budget, member
budget, personal credits untouched) under concurrency, self-service authorization by role, and
leaving an org."""

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from tests.helpers import ADMIN, assert_error, bearer, create_key, create_user
from tests.helpers.orgs import add_member, create_org, member_with_key, org_books, org_key
from tests.helpers.upstream import chat

COST = Decimal(10) * Decimal("0.00000015") + Decimal(20) * Decimal("0.0000006")  # the faked usage: 0.0000135


def test_admin_creates_lists_shows_and_changes_an_org(client, sql):
    org = create_org(client, credits="2.50", allowed_models=["openai/*"], budget="1.00", budget_period="daily")
    assert (org["credits"], org["plan"], org["status"], org["member_count"]) == ("2.50", "team", "active", 0)
    assert (org["budget"], org["budget_period"], org["allowed_models"]) == ("1.00", "daily", ["openai/*"])
    listed = client.get("/admin/orgs", query_string={"name": org["name"]}, headers=ADMIN).get_json()
    assert listed["total"] == 1 and listed["orgs"][0]["id"] == org["id"]
    shown = client.get(f"/admin/orgs/{org['id']}", headers=ADMIN).get_json()
    assert shown["name"] == org["name"]
    changed = client.patch(f"/admin/orgs/{org['id']}", json={"plan": "dev", "name": "Renamed"}, headers=ADMIN)
    assert changed.status_code == 200 and (changed.get_json()["plan"], changed.get_json()["name"]) == ("dev", "Renamed")
    assert_error(client.post("/admin/orgs", json={"name": "renamed"}, headers=ADMIN), 409, "org_name_taken")
    assert_error(client.patch(f"/admin/orgs/{org['id']}", json={"plan": "nope"}, headers=ADMIN), 422, "unknown_plan")
    assert_error(client.get("/admin/orgs/999999", headers=ADMIN), 404, "org_not_found")
    assert_error(client.post("/admin/orgs", json={"name": ""}, headers=ADMIN), 422, "validation_error")
    actions = [
        row["action"]
        for row in sql(
            "SELECT action FROM api_key_audit_logs WHERE details->>'org_id' = %s ORDER BY id", (str(org["id"]),)
        )
    ]
    assert actions == ["org_created", "org_credits_adjusted", "org_updated"]
    [ledger] = sql(
        "SELECT user_id, amount, kind, balance_after FROM credit_transactions WHERE org_id = %s", (org["id"],)
    )
    assert ledger == {"user_id": None, "amount": Decimal("2.5"), "kind": "initial", "balance_after": Decimal("2.5")}


def test_org_credits_are_granted_and_removed_with_a_ledger_row(client, sql):
    org = create_org(client)
    granted = client.post(
        f"/admin/orgs/{org['id']}/credits", json={"amount": "3", "reason": "invoice 7"}, headers=ADMIN
    )
    assert granted.status_code == 200 and granted.get_json()["credits"] == "3.00"
    too_much = client.post(f"/admin/orgs/{org['id']}/credits", json={"amount": "-4", "reason": "x"}, headers=ADMIN)
    assert_error(too_much, 409, "insufficient_credits")
    missing = client.post("/admin/orgs/999999/credits", json={"amount": "1", "reason": "x"}, headers=ADMIN)
    assert_error(missing, 404, "org_not_found")
    assert org_books(sql, org["id"])["ledger"] == Decimal(3)


def test_admin_manages_members(client, sql):
    org = create_org(client, budget="1.00")
    owner, _ = create_user(client)
    other, _ = create_user(client)
    added = add_member(client, org["id"], owner["id"], "owner")
    assert added.status_code == 201 and added.get_json()["role"] == "owner"
    assert_error(add_member(client, org["id"], owner["id"]), 409, "already_member")
    assert_error(add_member(client, org["id"], 999999), 404, "user_not_found")
    assert_error(add_member(client, org["id"], other["id"], budget="2"), 422, "budget_above_org_budget")
    assert_error(add_member(client, org["id"], other["id"], role="boss"), 422, "validation_error")
    assert add_member(client, org["id"], other["id"], budget="0.5").status_code == 201
    path = f"/admin/orgs/{org['id']}/members"
    assert [m["user_id"] for m in client.get(path, headers=ADMIN).get_json()["members"]] == [owner["id"], other["id"]]
    assert_error(client.patch(f"{path}/{owner['id']}", json={"role": "member"}, headers=ADMIN), 409, "last_owner")
    assert client.patch(f"{path}/{other['id']}", json={"role": "admin"}, headers=ADMIN).get_json()["role"] == "admin"
    assert_error(client.delete(f"{path}/{owner['id']}", headers=ADMIN), 409, "last_owner")
    assert client.delete(f"{path}/{other['id']}", headers=ADMIN).status_code == 200
    assert_error(client.delete(f"{path}/{other['id']}", headers=ADMIN), 404, "member_not_found")
    assert client.get(f"/admin/orgs/{org['id']}", headers=ADMIN).get_json()["member_count"] == 1


def test_an_org_key_draws_on_the_org_and_leaves_personal_credits_alone(client, upstream, sql):
    org = create_org(client, credits="1.00")
    user, key, okey = member_with_key(client, org["id"])
    assert chat(client, okey).status_code == 200
    assert chat(client, key).status_code == 200  # the personal key: personal credits
    books = org_books(sql, org["id"])
    assert books["credits"] == Decimal("1.00") - COST and books["usage"] == COST and books["reserved_credits"] == 0
    assert books["ledger"] == Decimal("1.00") - COST
    [personal] = sql("SELECT credits, reserved_credits FROM users WHERE id = %s", (user["id"],))
    assert personal == {"credits": Decimal("5.00") - COST, "reserved_credits": 0}
    [debit] = sql(
        "SELECT user_id, balance_after FROM credit_transactions WHERE org_id = %s AND kind = 'usage'", (org["id"],)
    )
    assert debit == {"user_id": user["id"], "balance_after": Decimal("1.00") - COST}
    balance = client.get("/user/balance", headers=bearer(okey)).get_json()
    assert (balance["org_id"], Decimal(balance["credits"])) == (org["id"], Decimal("1.00") - COST)


def test_an_org_without_credits_refuses_its_keys_not_the_members_personal_ones(client, upstream):
    org = create_org(client)
    _, key, okey = member_with_key(client, org["id"])
    assert_error(chat(client, okey), 402, "insufficient_credits")
    assert chat(client, key).status_code == 200


def test_concurrent_org_requests_never_pass_the_org_budget(client, upstream, sql):
    org = create_org(client, credits="1.00", budget="0.0002")
    keys = [member_with_key(client, org["id"])[2] for _ in range(3)]
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda i: chat(client, keys[i % 3]).status_code, range(40)))
    assert set(statuses) <= {200, 402} and 402 in statuses
    books = org_books(sql, org["id"])
    assert books["budget_spent"] == books["usage"] == statuses.count(200) * COST <= Decimal("0.0002")
    assert books["budget_reserved"] == books["reserved_credits"] == 0
    assert books["credits"] == Decimal("1.00") - books["usage"]


def test_concurrent_requests_never_pass_a_members_org_budget(client, upstream, sql):
    org = create_org(client, credits="1.00")
    user, _, okey = member_with_key(client, org["id"], budget="0.0001")
    _, _, other_key = member_with_key(client, org["id"])
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda _: chat(client, okey).status_code, range(30)))
    assert set(statuses) <= {200, 402} and 402 in statuses
    error = assert_error(chat(client, okey), 402, "budget_exceeded")
    assert error["details"]["scope"] == "member"
    assert chat(client, other_key).status_code == 200  # another member has no cap of their own
    [member] = sql(
        "SELECT budget_spent, budget_reserved FROM org_members WHERE org_id = %s AND user_id = %s",
        (org["id"], user["id"]),
    )
    assert member["budget_spent"] == statuses.count(200) * COST <= Decimal("0.0001") and member["budget_reserved"] == 0
    assert org_books(sql, org["id"])["usage"] == (statuses.count(200) + 1) * COST


def test_an_org_keys_own_cap_stays_within_its_members_budget(client):
    org = create_org(client, credits="1.00", budget="0.5")
    user, key = create_user(client, credits="1.00")
    assert add_member(client, org["id"], user["id"], budget="0.1").status_code == 201
    assert_error(
        client.post("/user/api-keys", json={"name": "k", "org_id": org["id"], "budget": "0.2"}, headers=bearer(key)),
        422,
        "budget_above_member_budget",
    )
    created, _ = org_key(client, key, org["id"], budget="0.05")
    assert (created["org_id"], created["budget"]) == (org["id"], "0.05")


def test_a_suspended_org_stops_its_keys_at_once(client, upstream):
    org = create_org(client, credits="1.00")
    _, key, okey = member_with_key(client, org["id"])
    assert client.patch(f"/admin/orgs/{org['id']}", json={"status": "suspended"}, headers=ADMIN).status_code == 200
    assert_error(chat(client, okey), 401, "invalid_api_key")
    assert chat(client, key).status_code == 200
    assert_error(
        client.post("/user/api-keys", json={"name": "n", "org_id": org["id"]}, headers=bearer(key)),
        409,
        "org_suspended",
    )


def test_the_org_allowlist_bounds_its_keys(client, upstream):
    org = create_org(client, credits="1.00", allowed_models=["anthropic/*"])
    _, key, okey = member_with_key(client, org["id"])
    assert_error(chat(client, okey), 403, "model_not_allowed")
    assert chat(client, key).status_code == 200


def test_only_members_create_org_keys(client):
    org = create_org(client, credits="1.00")
    _, key = create_user(client)
    assert_error(
        client.post("/user/api-keys", json={"name": "n", "org_id": org["id"]}, headers=bearer(key)),
        404,
        "org_not_found",
    )


def test_org_keys_share_the_orgs_rate_limits(client, upstream, sql):
    org = create_org(client, credits="1.00", plan="trial")  # 10 requests a minute for the whole org
    first = member_with_key(client, org["id"])[2]
    second = member_with_key(client, org["id"])[2]
    statuses = [chat(client, first if i % 2 else second, max_tokens=1).status_code for i in range(12)]
    assert statuses.count(200) == 10 and statuses[-2:] == [429, 429]


def test_leaving_an_org_revokes_the_members_org_keys(client, upstream, sql):
    org = create_org(client, credits="1.00")
    user, key, okey = member_with_key(client, org["id"])
    assert chat(client, okey).status_code == 200
    left = client.delete(f"/org/{org['id']}/members/{user['id']}", headers=bearer(key))
    assert left.status_code == 200
    assert_error(chat(client, okey), 401, "invalid_api_key")
    assert chat(client, key).status_code == 200  # personal keys stay
    [revoked] = sql("SELECT details FROM api_key_audit_logs WHERE action = 'delete' AND user_id = %s", (user["id"],))
    assert revoked["details"]["reason"] == "left_org"
    [removed] = sql(
        "SELECT actor FROM api_key_audit_logs WHERE action = 'org_member_removed' AND user_id = %s", (user["id"],)
    )
    assert removed["actor"] == f"user:{user['id']}"


@pytest.fixture
def roles(client):
    org = create_org(client, credits="1.00", budget="1.00")
    people = {}
    for role in ("owner", "admin", "member"):
        user, key = create_user(client)
        assert add_member(client, org["id"], user["id"], role).status_code == 201
        people[role] = (user, key)
    people["outsider"] = create_user(client)
    return org, people


def test_self_service_reads_by_role(client, roles):
    org, people = roles
    path = f"/org/{org['id']}"
    for role in ("owner", "admin", "member"):
        shown = client.get(path, headers=bearer(people[role][1])).get_json()
        assert shown["membership"]["role"] == role and shown["name"] == org["name"]
    assert len(client.get(f"{path}/members", headers=bearer(people["admin"][1])).get_json()["members"]) == 3
    own = client.get(f"{path}/members", headers=bearer(people["member"][1])).get_json()["members"]
    assert [m["user_id"] for m in own] == [people["member"][0]["id"]]
    for route in ("", "/members", "/usage"):
        assert_error(client.get(f"{path}{route}", headers=bearer(people["outsider"][1])), 404, "org_not_found")
    assert_error(client.get("/org/999999", headers=bearer(people["owner"][1])), 404, "org_not_found")


def test_self_service_changes_by_role(client, roles, sql):
    org, people = roles
    owner, admin, member = (bearer(people[role][1]) for role in ("owner", "admin", "member"))
    newcomer, _ = create_user(client)
    path = f"/org/{org['id']}/members"
    assert_error(add_member(client, org["id"], newcomer["id"], headers=member), 403, "org_role_required")
    assert_error(add_member(client, org["id"], newcomer["id"], "owner", headers=admin), 403, "org_role_required")
    assert_error(
        add_member(client, org["id"], newcomer["id"], budget="5", headers=admin), 422, "budget_above_org_budget"
    )
    assert add_member(client, org["id"], newcomer["id"], budget="0.5", headers=admin).status_code == 201
    owner_id = people["owner"][0]["id"]
    assert_error(client.patch(f"{path}/{owner_id}", json={"role": "member"}, headers=admin), 403, "org_role_required")
    assert_error(client.patch(f"{path}/{owner_id}", json={"role": "member"}, headers=owner), 409, "last_owner")
    promoted = client.patch(f"{path}/{newcomer['id']}", json={"role": "admin", "budget": "0.25"}, headers=owner)
    assert promoted.status_code == 200 and (promoted.get_json()["role"], promoted.get_json()["budget"]) == (
        "admin",
        "0.25",
    )
    assert_error(client.delete(f"{path}/{people['admin'][0]['id']}", headers=member), 403, "org_role_required")
    assert_error(client.delete(f"{path}/{owner_id}", headers=admin), 403, "org_role_required")
    assert client.delete(f"{path}/{newcomer['id']}", headers=admin).status_code == 200
    assert_error(
        client.patch(f"{path}/{newcomer['id']}", json={"role": "member"}, headers=owner), 404, "member_not_found"
    )
    actors = sql(
        "SELECT action, actor FROM api_key_audit_logs WHERE user_id = %s AND action LIKE 'org_member%%' ORDER BY id",
        (newcomer["id"],),
    )
    admin_actor, owner_actor = f"user:{people['admin'][0]['id']}", f"user:{owner_id}"
    assert [(a["action"], a["actor"]) for a in actors] == [
        ("org_member_added", admin_actor),
        ("org_member_updated", owner_actor),
        ("org_member_removed", admin_actor),
    ]


def test_a_scoped_key_needs_org_manage_to_change_members(client, roles):
    org, people = roles
    _, scoped = create_key(client, people["owner"][1], name="reader", scopes=["usage:read"])
    newcomer, _ = create_user(client)
    assert_error(add_member(client, org["id"], newcomer["id"], headers=bearer(scoped)), 403, "insufficient_scope")
    assert client.get(f"/org/{org['id']}", headers=bearer(scoped)).status_code == 200


def test_org_usage_by_member_and_the_admin_report_by_org(client, upstream, sql):
    org = create_org(client, credits="1.00")
    owner, owner_key, owner_org_key = member_with_key(client, org["id"], role="owner")
    member, member_key, member_org_key = member_with_key(client, org["id"])
    for okey, times in ((owner_org_key, 1), (member_org_key, 2)):
        for _ in range(times):
            assert chat(client, okey).status_code == 200
    assert chat(client, member_key).status_code == 200  # personal: not the org's
    path = f"/org/{org['id']}/usage"
    today = {"fresh": "true", "start_date": datetime.now(UTC).date().isoformat()}
    report = client.get(path, query_string={"group_by": "user", **today}, headers=bearer(owner_key)).get_json()
    assert [(g["user_id"], g["requests"], Decimal(g["cost"])) for g in report["groups"]] == [
        (owner["id"], 1, COST),
        (member["id"], 2, 2 * COST),
    ]
    own = client.get(path, query_string={"group_by": "user", **today}, headers=bearer(member_key)).get_json()
    assert [(g["user_id"], g["requests"]) for g in own["groups"]] == [(member["id"], 2)]
    csv = client.get(path, query_string={"group_by": "key", "format": "csv", **today}, headers=bearer(owner_key))
    assert csv.status_code == 200 and csv.text.splitlines()[0].startswith("api_key_id,key_name,masked_key,requests")
    assert len(csv.text.splitlines()) == 3
    admin = client.get("/admin/reports/usage", query_string={"group_by": "org", **today}, headers=ADMIN).get_json()
    by_org = {g["org_id"]: g for g in admin["groups"]}
    assert by_org[org["id"]]["requests"] == 3 and by_org[org["id"]]["org_name"] == org["name"]
    assert Decimal(by_org[org["id"]]["cost"]) == 3 * COST and by_org[None]["requests"] >= 1
    monitor = client.get("/admin/monitor", headers=ADMIN).get_json()["data"]
    [top] = [row for row in monitor["top_orgs_by_usage"] if row["org_id"] == org["id"]]
    assert (top["name"], top["requests"], Decimal(top["cost"])) == (org["name"], 3, 3 * COST)
    assert monitor["total_orgs"] >= 1


def test_a_rotated_org_key_stays_the_orgs(client, upstream, sql):
    org = create_org(client, credits="1.00")
    user, key = create_user(client, credits="1.00")
    assert add_member(client, org["id"], user["id"]).status_code == 201
    created, _ = org_key(client, key, org["id"])
    rotated = client.post(f"/user/api-keys/{created['id']}/rotate", json={}, headers=bearer(key))
    assert rotated.status_code == 201 and rotated.get_json()["key"]["org_id"] == org["id"]
    assert chat(client, rotated.get_json()["api_key"]).status_code == 200
    assert org_books(sql, org["id"])["usage"] == COST
