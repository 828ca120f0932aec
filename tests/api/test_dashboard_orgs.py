"""Dashboard organization pages over the test client: the list and an org's page; create an org, its
credits, plan, budget and status; add, change and remove members; each after confirming, audited
as the signed-in admin, refusals shown as pages."""

from decimal import Decimal

from tests.helpers import ADMIN, bearer, create_key, create_user
from tests.helpers.dashboard import csrf_of, post_confirmed, sign_in

_names = iter(range(10**6))


def create_org(client, **fields):
    """An org made through the admin API."""
    body = {"name": f"Dash Org {next(_names)}", "plan": "team", **fields}
    response = client.post("/admin/orgs", json=body, headers=ADMIN)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def add_member(client, org_id, user_id, role="member", **fields):
    response = client.post(
        f"/admin/orgs/{org_id}/members", json={"user_id": user_id, "role": role, **fields}, headers=ADMIN
    )
    assert response.status_code == 201, response.get_json()


def signed_in(client):
    """Sign in as the bootstrap admin; the session's CSRF token."""
    sign_in(client)
    return csrf_of(client, "/dashboard/orgs")


def org_row(sql, org_id):
    return sql(
        "SELECT name, plan, status, credits, budget, budget_period, allowed_models FROM organizations WHERE id = %s",
        (org_id,),
    )[0]


def org_audit(sql, org_id, action):
    return sql(
        "SELECT actor, user_id, details FROM api_key_audit_logs WHERE action = %s AND details->>'org_id' = %s"
        " ORDER BY id",
        (action, str(org_id)),
    )


def member_row(sql, org_id, user_id):
    return sql(
        "SELECT role, budget, budget_period FROM org_members WHERE org_id = %s AND user_id = %s", (org_id, user_id)
    )


NEW_ORG = {
    "name": "Acme Research",
    "plan": "team",
    "credits": "2.50",
    "budget": "10",
    "budget_period": "monthly",
    "allowed_models": "openai/*\nanthropic/claude-3-haiku",
}


def test_the_orgs_page_lists_orgs_and_is_in_the_navigation(client):
    org = create_org(client, credits="4.00", budget="3.00")
    sign_in(client)
    page = client.get("/dashboard/orgs").get_data(as_text=True)
    row = page[page.index(f'id="org-{org["id"]}"') :].split("</tr>")[0]
    assert org["name"] in row and "team" in row and "$4.00" in row and "$3.00, monthly" in row
    assert 'id="nav-orgs"' in client.get("/dashboard/").get_data(as_text=True)
    found = client.get("/dashboard/orgs", query_string={"q": "no such org"}).get_data(as_text=True)
    assert org["name"] not in found and "No organizations match" in found


def test_create_an_org_asks_first_then_creates_it_audited_as_the_admin(client, sql):
    token = signed_in(client)
    asked = client.post("/dashboard/orgs/new", data={**NEW_ORG, "csrf_token": token})
    assert asked.status_code == 200 and "Acme Research" in asked.get_data(as_text=True)
    assert sql("SELECT id FROM organizations") == []

    response = client.post("/dashboard/orgs/new", data={**NEW_ORG, "csrf_token": token, "confirmed": "yes"})
    [org] = sql("SELECT id FROM organizations WHERE name = 'Acme Research'")
    assert response.status_code == 302 and response.headers["Location"] == f"/dashboard/orgs/{org['id']}"
    row = org_row(sql, org["id"])
    assert (row["plan"], row["credits"], row["budget"], row["budget_period"]) == (
        "team",
        Decimal("2.5"),
        Decimal(10),
        "monthly",
    )
    assert row["allowed_models"] == ["openai/*", "anthropic/claude-3-haiku"]
    assert [r["actor"] for r in org_audit(sql, org["id"], "org_created")] == ["admin:bootstrap"]
    assert [r["actor"] for r in org_audit(sql, org["id"], "org_credits_adjusted")] == ["admin:bootstrap"]
    page = client.get(f"/dashboard/orgs/{org['id']}").get_data(as_text=True)
    assert "$2.50" in page and "openai/*, anthropic/claude-3-haiku" in page and 'id="org-spent"' in page


def test_create_an_org_with_bad_input_shows_the_problems_with_a_400(client, sql):
    token = signed_in(client)
    bad = {**NEW_ORG, "name": "", "credits": "-5", "allowed_models": "not allowed!"}
    response = client.post("/dashboard/orgs/new", data={**bad, "csrf_token": token, "confirmed": "yes"})
    page = response.get_data(as_text=True)
    assert response.status_code == 400 and 'id="form-problems"' in page
    for field in ("name", "credits", "allowed models item 2"):
        assert f"<strong>{field}</strong>" in page
    assert "not allowed!" in page  # what was typed is kept
    assert sql("SELECT id FROM organizations") == []


def test_create_an_org_refuses_a_taken_name_and_an_unknown_plan(client, sql):
    create_org(client, name="acme research")
    token = signed_in(client)
    taken = client.post("/dashboard/orgs/new", data={**NEW_ORG, "csrf_token": token, "confirmed": "yes"})
    assert taken.status_code == 409 and "already exists" in taken.get_data(as_text=True)
    unknown = client.post(
        "/dashboard/orgs/new",
        data={**NEW_ORG, "name": "Other", "plan": "gold", "csrf_token": token, "confirmed": "yes"},
    )
    assert unknown.status_code == 422 and "no plan named" in unknown.get_data(as_text=True)
    assert [row["name"] for row in sql("SELECT name FROM organizations")] == ["acme research"]


def test_forged_forms_change_nothing(client, sql):
    org = create_org(client)
    user, _ = create_user(client)
    signed_in(client)
    forged = {"csrf_token": "forged", "confirmed": "yes"}
    attempts = [
        ("/dashboard/orgs/new", NEW_ORG),
        (f"/dashboard/orgs/{org['id']}/credits", {"amount": "5", "reason": "x"}),
        (f"/dashboard/orgs/{org['id']}/status", {"status": "suspended"}),
        (f"/dashboard/orgs/{org['id']}/members", {"user": str(user["id"]), "role": "owner"}),
    ]
    for path, data in attempts:
        response = client.post(path, data={**data, **forged})
        assert response.status_code == 400 and "csrf" in response.get_data(as_text=True), path
    assert len(sql("SELECT id FROM organizations")) == 1 and sql("SELECT id FROM org_members") == []
    assert org_row(sql, org["id"])["status"] == "active" and org_row(sql, org["id"])["credits"] == 0


def test_grant_and_remove_org_credits_after_confirming(client, sql):
    org = create_org(client)
    token = signed_in(client)
    path = f"/dashboard/orgs/{org['id']}/credits"
    response = post_confirmed(client, path, {"amount": "3", "reason": "invoice 7"}, token)
    assert response.status_code == 302
    post_confirmed(client, path, {"amount": "-1.25", "reason": "refund"}, token)
    assert org_row(sql, org["id"])["credits"] == Decimal("1.75")
    ledger = sql("SELECT amount, reason FROM credit_transactions WHERE org_id = %s ORDER BY id", (org["id"],))
    assert [(row["amount"], row["reason"]) for row in ledger] == [(3, "invoice 7"), (Decimal("-1.25"), "refund")]
    audits = org_audit(sql, org["id"], "org_credits_adjusted")
    assert [(a["actor"], a["details"]["amount"]) for a in audits] == [
        ("admin:bootstrap", "3.00"),
        ("admin:bootstrap", "-1.25"),
    ]
    assert "Removed $1.25; balance is now $1.75." in client.get(f"/dashboard/orgs/{org['id']}").get_data(as_text=True)


def test_credit_refusals_are_pages_not_errors(client, sql):
    org = create_org(client, credits="1.00")
    token = signed_in(client)
    path = f"/dashboard/orgs/{org['id']}/credits"
    too_much = client.post(path, data={"amount": "-4", "reason": "x", "csrf_token": token, "confirmed": "yes"})
    assert too_much.status_code == 409 and 'id="form-error"' in too_much.get_data(as_text=True)
    zero = client.post(path, data={"amount": "0", "reason": "", "csrf_token": token})
    page = zero.get_data(as_text=True)
    assert zero.status_code == 400 and "must not be zero" in page and "<strong>reason</strong>" in page
    assert org_row(sql, org["id"])["credits"] == 1
    missing = client.post("/dashboard/orgs/999999/credits", data={"amount": "1", "reason": "x", "csrf_token": token})
    assert missing.status_code == 404
    assert client.get("/dashboard/orgs/999999").status_code == 404


def test_change_plan_budget_and_models_after_confirming(client, sql):
    org = create_org(client)
    token = signed_in(client)
    base = f"/dashboard/orgs/{org['id']}"
    assert post_confirmed(client, f"{base}/plan", {"plan": "dev"}, token).status_code == 302
    budget = {"budget": "20", "budget_period": "weekly", "budget_alert_thresholds": "", "allowed_models": "openai/*"}
    assert post_confirmed(client, f"{base}/budget", budget, token).status_code == 302
    row = org_row(sql, org["id"])
    assert (row["plan"], row["budget"], row["budget_period"], row["allowed_models"]) == (
        "dev",
        Decimal(20),
        "weekly",
        ["openai/*"],
    )
    changes = [(a["actor"], a["details"]["changes"]) for a in org_audit(sql, org["id"], "org_updated")]
    assert changes[0] == ("admin:bootstrap", {"plan": "dev"})
    assert changes[1][0] == "admin:bootstrap" and changes[1][1]["budget_period"] == "weekly"
    unknown = client.post(f"{base}/plan", data={"plan": "gold", "csrf_token": token, "confirmed": "yes"})
    assert unknown.status_code == 422 and "no plan named" in unknown.get_data(as_text=True)
    bad = client.post(f"{base}/budget", data={**budget, "budget": "lots", "csrf_token": token, "confirmed": "yes"})
    assert bad.status_code == 400 and "<strong>budget</strong>" in bad.get_data(as_text=True)
    assert org_row(sql, org["id"])["plan"] == "dev"


def test_suspend_then_reactivate_an_org_stops_and_restarts_its_keys(client, sql):
    org = create_org(client, credits="1.00")
    user, key = create_user(client)
    add_member(client, org["id"], user["id"])
    _, org_key = create_key(client, key, name="org key", org_id=org["id"])
    token = signed_in(client)
    path = f"/dashboard/orgs/{org['id']}/status"
    asked = client.post(path, data={"status": "suspended", "csrf_token": token})
    assert "Its org keys stop working at once" in asked.get_data(as_text=True)
    assert org_row(sql, org["id"])["status"] == "active"
    post_confirmed(client, path, {"status": "suspended"}, token)
    assert org_row(sql, org["id"])["status"] == "suspended"
    assert client.get("/user/balance", headers=bearer(org_key)).status_code == 401
    assert client.get("/user/balance", headers=bearer(key)).status_code == 200
    post_confirmed(client, path, {"status": "active"}, token)
    assert client.get("/user/balance", headers=bearer(org_key)).status_code == 200
    statuses = [(a["actor"], a["details"]["changes"]["status"]) for a in org_audit(sql, org["id"], "org_updated")]
    assert statuses == [("admin:bootstrap", "suspended"), ("admin:bootstrap", "active")]
    bad = client.post(path, data={"status": "deleted", "csrf_token": token, "confirmed": "yes"})
    assert bad.status_code == 400


def test_add_members_by_id_and_by_email_after_confirming(client, sql):
    org = create_org(client, budget="5.00")
    owner, _ = create_user(client)
    member, _ = create_user(client, email="Member.Of@Example.com")
    token = signed_in(client)
    path = f"/dashboard/orgs/{org['id']}/members"
    asked = client.post(path, data={"user": str(owner["id"]), "role": "owner", "budget": "", "csrf_token": token})
    assert asked.status_code == 200 and owner["email"] in asked.get_data(as_text=True)
    assert sql("SELECT id FROM org_members") == []
    post_confirmed(client, path, {"user": str(owner["id"]), "role": "owner", "budget": ""}, token)
    by_email = {"user": "member.of@example.com", "role": "member", "budget": "2", "budget_period": "daily"}
    assert post_confirmed(client, path, by_email, token).status_code == 302
    assert member_row(sql, org["id"], owner["id"]) == [{"role": "owner", "budget": None, "budget_period": "monthly"}]
    assert member_row(sql, org["id"], member["id"]) == [{"role": "member", "budget": 2, "budget_period": "daily"}]
    added = sql("SELECT actor, user_id FROM api_key_audit_logs WHERE action = 'org_member_added' ORDER BY id")
    assert added == [
        {"actor": "admin:bootstrap", "user_id": owner["id"]},
        {"actor": "admin:bootstrap", "user_id": member["id"]},
    ]
    page = client.get(f"/dashboard/orgs/{org['id']}").get_data(as_text=True)
    assert 'id="member-summary-{}">member · $2.00, daily'.format(member["id"]) in page
    user_page = client.get(f"/dashboard/users/{member['id']}").get_data(as_text=True)
    assert f"{org['name']}</a> (member)" in user_page


def test_adding_a_member_refuses_with_the_rule_broken(client, sql):
    org = create_org(client, budget="1.00")
    user, _ = create_user(client)
    add_member(client, org["id"], user["id"])
    token = signed_in(client)
    path = f"/dashboard/orgs/{org['id']}/members"

    def confirmed(**data):
        return client.post(path, data={"role": "member", **data, "csrf_token": token, "confirmed": "yes"})

    already = confirmed(user=str(user["id"]))
    assert already.status_code == 409 and "member already" in already.get_data(as_text=True)
    other, _ = create_user(client)
    above = confirmed(user=str(other["id"]), budget="2")
    assert above.status_code == 422 and "cannot exceed the org" in above.get_data(as_text=True)
    nobody = confirmed(user="nobody@example.com")
    assert nobody.status_code == 404 and "no user has the email" in nobody.get_data(as_text=True)
    assert 'id="form-error"' in nobody.get_data(as_text=True)  # a refusal page, not the error page
    blank = confirmed(user="", role="boss")
    page = blank.get_data(as_text=True)
    assert blank.status_code == 400 and "<strong>user id</strong>" in page and "<strong>role</strong>" in page
    assert len(sql("SELECT id FROM org_members")) == 1


def test_change_a_members_role_and_budget_keeping_an_owner(client, sql):
    org = create_org(client, budget="5.00")
    owner, _ = create_user(client)
    member, _ = create_user(client)
    add_member(client, org["id"], owner["id"], "owner")
    add_member(client, org["id"], member["id"])
    token = signed_in(client)
    base = f"/dashboard/orgs/{org['id']}/members"
    change = {"role": "admin", "budget": "1.5", "budget_period": "weekly"}
    asked = client.post(f"{base}/{member['id']}", data={**change, "csrf_token": token})
    assert "member → admin" in asked.get_data(as_text=True)
    assert post_confirmed(client, f"{base}/{member['id']}", change, token).status_code == 302
    assert member_row(sql, org["id"], member["id"]) == [
        {"role": "admin", "budget": Decimal("1.5"), "budget_period": "weekly"}
    ]
    [updated] = sql("SELECT actor, details FROM api_key_audit_logs WHERE action = 'org_member_updated'")
    assert updated["actor"] == "admin:bootstrap" and updated["details"]["changes"]["role"] == "admin"

    demote = client.post(
        f"{base}/{owner['id']}", data={"role": "member", "budget": "", "csrf_token": token, "confirmed": "yes"}
    )
    assert demote.status_code == 409 and "at least one owner" in demote.get_data(as_text=True)
    above = client.post(
        f"{base}/{member['id']}", data={**change, "budget": "9", "csrf_token": token, "confirmed": "yes"}
    )
    assert above.status_code == 422 and "cannot exceed the org" in above.get_data(as_text=True)
    stranger = client.post(f"{base}/999999", data={**change, "csrf_token": token})
    assert stranger.status_code == 404 and "not a member" in stranger.get_data(as_text=True)
    assert member_row(sql, org["id"], owner["id"])[0]["role"] == "owner"
    assert member_row(sql, org["id"], member["id"])[0]["budget"] == Decimal("1.5")


def test_remove_a_member_revokes_their_org_keys_not_their_own(client, sql):
    org = create_org(client, credits="1.00")
    owner, _ = create_user(client)
    member, key = create_user(client)
    add_member(client, org["id"], owner["id"], "owner")
    add_member(client, org["id"], member["id"])
    _, org_key = create_key(client, key, name="org key", org_id=org["id"])
    token = signed_in(client)
    base = f"/dashboard/orgs/{org['id']}/members"
    asked = client.post(f"{base}/{member['id']}/remove", data={"csrf_token": token})
    assert "API keys of this organization are revoked at once" in asked.get_data(as_text=True)
    assert client.get("/user/balance", headers=bearer(org_key)).status_code == 200  # nothing yet
    assert post_confirmed(client, f"{base}/{member['id']}/remove", {}, token).status_code == 302
    assert member_row(sql, org["id"], member["id"]) == []
    assert client.get("/user/balance", headers=bearer(org_key)).status_code == 401
    assert client.get("/user/balance", headers=bearer(key)).status_code == 200
    [removed] = org_audit(sql, org["id"], "org_member_removed")
    assert removed["actor"] == "admin:bootstrap" and removed["user_id"] == member["id"]
    last = client.post(f"{base}/{owner['id']}/remove", data={"csrf_token": token, "confirmed": "yes"})
    assert last.status_code == 409 and "at least one owner" in last.get_data(as_text=True)
    again = client.post(f"{base}/{member['id']}/remove", data={"csrf_token": token, "confirmed": "yes"})
    assert again.status_code == 404 and 'id="form-error"' in again.get_data(as_text=True)


def test_an_admin_users_org_actions_are_audited_under_their_own_id(client, sql):
    admin, admin_key = create_user(client, role="admin")
    org = create_org(client)
    user, _ = create_user(client)
    sign_in(client, admin_key)
    token = csrf_of(client, "/dashboard/orgs")
    post_confirmed(client, f"/dashboard/orgs/{org['id']}/credits", {"amount": "2", "reason": "trial"}, token)
    post_confirmed(client, f"/dashboard/orgs/{org['id']}/members", {"user": str(user["id"]), "role": "owner"}, token)
    assert org_audit(sql, org["id"], "org_credits_adjusted")[0]["actor"] == f"admin:{admin['id']}"
    assert org_audit(sql, org["id"], "org_member_added")[0]["actor"] == f"admin:{admin['id']}"
