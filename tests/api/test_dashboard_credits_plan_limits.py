"""A user's credits, plan and rate limits from the dashboard over the test client: each asks first, acts
only when confirmed, audits the signed-in admin, and refuses bad input or a broken rule with a page."""

from decimal import Decimal

import pytest

from tests.conftest import ADMIN_API_KEY
from tests.helpers import ADMIN, create_user
from tests.helpers.dashboard import csrf_of, post_confirmed, sign_in


def audit_rows(sql, action, user_id):
    return sql(
        "SELECT actor, details FROM api_key_audit_logs WHERE action = %s AND user_id = %s ORDER BY id",
        (action, user_id),
    )


def signed_in(client, key=ADMIN_API_KEY):
    """Sign in (the bootstrap admin unless ``key``); the CSRF token of the session."""
    sign_in(client, key)
    return csrf_of(client, "/dashboard/users")


def audit_changes(sql, user_id):
    """The user's audit rows after their creation (which writes user_created and the first key's create)."""
    return sql(
        "SELECT action, actor FROM api_key_audit_logs"
        " WHERE user_id = %s AND action NOT IN ('user_created', 'create') ORDER BY id",
        (user_id,),
    )


def user_row(sql, user_id):
    (row,) = sql("SELECT credits, reserved_credits, plan FROM users WHERE id = %s", (user_id,))
    return row


def overrides(sql, user_id):
    return sql("SELECT * FROM rate_limit_overrides WHERE user_id = %s", (user_id,))


def effective(client, user_id):
    """(limits, sources) as GET /admin/limit/<id> answers."""
    body = client.get(f"/admin/limit/{user_id}", headers=ADMIN).get_json()
    return body["rate_limits"], body["sources"]


def test_granting_credits_asks_first_then_writes_the_ledger_and_the_audit_log(client, sql):
    user, _ = create_user(client, credits="2")
    token = signed_in(client)
    path = f"/dashboard/users/{user['id']}/credits"
    asked = client.post(path, data={"amount": "12.50", "reason": "ticket 7", "csrf_token": token})
    page = asked.get_data(as_text=True)
    assert asked.status_code == 200 and "Grant credits?" in page
    assert user["email"] in page and "Grant $12.50" in page and "ticket 7" in page and "$2.00 → $14.50" in page
    assert user_row(sql, user["id"])["credits"] == 2
    assert len(audit_rows(sql, "credits_adjusted", user["id"])) == 1  # the opening balance only

    done = client.post(path, data={"amount": "12.50", "reason": "ticket 7", "csrf_token": token, "confirmed": "yes"})
    assert done.status_code == 302 and done.headers["Location"].endswith(f"/dashboard/users/{user['id']}")
    assert "Granted $12.50; balance is now $14.50." in client.get(done.headers["Location"]).get_data(as_text=True)
    assert user_row(sql, user["id"])["credits"] == Decimal("14.5")
    ledger = sql("SELECT kind, amount, reason FROM credit_transactions WHERE user_id = %s ORDER BY id", (user["id"],))
    assert ledger[-1] == {"kind": "grant", "amount": Decimal("12.5"), "reason": "ticket 7"}
    (row,) = audit_rows(sql, "credits_adjusted", user["id"])[1:]  # the first is the opening balance
    assert row["actor"] == "admin:bootstrap" and row["details"]["amount"] == "12.50"


def test_removing_credits_is_a_danger_confirmation_and_a_debit(client, sql):
    user, _ = create_user(client, credits="5")
    token = signed_in(client)
    asked = client.post(
        f"/dashboard/users/{user['id']}/credits", data={"amount": "-1.25", "reason": "refund", "csrf_token": token}
    )
    page = asked.get_data(as_text=True)
    assert "Remove credits?" in page and "Remove $1.25" in page and "button danger" in page
    post_confirmed(client, f"/dashboard/users/{user['id']}/credits", {"amount": "-1.25", "reason": "refund"}, token)
    assert user_row(sql, user["id"])["credits"] == Decimal("3.75")
    kinds = sql("SELECT kind FROM credit_transactions WHERE user_id = %s ORDER BY id", (user["id"],))
    assert kinds[-1]["kind"] == "debit"


def test_a_debit_below_what_is_held_is_a_409_page_and_changes_nothing(client, sql):
    user, _ = create_user(client, credits="5")
    sql("UPDATE users SET reserved_credits = 4 WHERE id = %s", (user["id"],))
    token = signed_in(client)
    path = f"/dashboard/users/{user['id']}/credits"
    asked = client.post(path, data={"amount": "-2", "reason": "x", "csrf_token": token})
    assert "Held for requests" in asked.get_data(as_text=True)  # the page says why it may be refused
    refused = client.post(path, data={"amount": "-2", "reason": "x", "csrf_token": token, "confirmed": "yes"})
    page = refused.get_data(as_text=True)
    assert refused.status_code == 409 and 'id="form-error"' in page and "below zero" in page
    assert user_row(sql, user["id"])["credits"] == 5
    assert len(audit_rows(sql, "credits_adjusted", user["id"])) == 1  # the opening balance only


def test_bad_credit_input_is_a_400_page_naming_the_fields(client, sql):
    user, _ = create_user(client)
    token = signed_in(client)
    path = f"/dashboard/users/{user['id']}/credits"
    for confirmed in ("", "yes"):  # refused before the confirmation page, and if it is skipped
        response = client.post(path, data={"amount": "0", "reason": "", "csrf_token": token, "confirmed": confirmed})
        page = response.get_data(as_text=True)
        assert response.status_code == 400 and 'id="confirm-action"' not in page
        assert "<strong>amount</strong>: must not be zero" in page and "<strong>reason</strong>" in page
    lots = client.post(path, data={"amount": "lots", "reason": "x", "csrf_token": token})
    assert lots.status_code == 400 and "<strong>amount</strong>" in lots.get_data(as_text=True)
    assert sql("SELECT id FROM credit_transactions WHERE user_id = %s", (user["id"],)) == []


def test_changing_the_plan_asks_first_then_audits(client, sql):
    user, _ = create_user(client, plan="trial")
    token = signed_in(client)
    path = f"/dashboard/users/{user['id']}/plan"
    asked = client.post(path, data={"plan": "dev", "csrf_token": token})
    page = asked.get_data(as_text=True)
    assert asked.status_code == 200 and "Change this user&#39;s plan?" in page and "trial → dev" in page
    assert user_row(sql, user["id"])["plan"] == "trial" and audit_rows(sql, "user_updated", user["id"]) == []

    done = client.post(path, data={"plan": "dev", "csrf_token": token, "confirmed": "yes"})
    assert done.status_code == 302 and "Plan changed." in client.get(done.headers["Location"]).get_data(as_text=True)
    assert user_row(sql, user["id"])["plan"] == "dev"
    assert [(r["actor"], r["details"]["changes"]) for r in audit_rows(sql, "user_updated", user["id"])] == [
        ("admin:bootstrap", {"plan": "dev"})
    ]


def test_a_bad_or_unknown_plan_is_refused_with_a_page(client, sql):
    user, _ = create_user(client, plan="trial")
    token = signed_in(client)
    path = f"/dashboard/users/{user['id']}/plan"
    blank = client.post(path, data={"plan": "", "csrf_token": token})
    assert blank.status_code == 400 and "<strong>plan</strong>" in blank.get_data(as_text=True)
    unknown = client.post(path, data={"plan": "gold", "csrf_token": token, "confirmed": "yes"})
    assert unknown.status_code == 422 and "no plan named" in unknown.get_data(as_text=True)
    assert user_row(sql, user["id"])["plan"] == "trial" and audit_rows(sql, "user_updated", user["id"]) == []


def test_overriding_limits_asks_first_with_each_windows_new_value(client, sql):
    user, _ = create_user(client, plan="trial")  # 10 requests a minute, 100 an hour
    token = signed_in(client)
    path = f"/dashboard/users/{user['id']}/limits"
    data = {"requests_per_minute": "7", "requests_per_hour": "", "action": "save"}
    asked = client.post(path, data={**data, "csrf_token": token})
    page = asked.get_data(as_text=True)
    assert asked.status_code == 200 and "Change this user&#39;s limits?" in page
    assert "10 (plan) → 7" in page and "100 (plan), unchanged" in page
    assert overrides(sql, user["id"]) == [] and audit_rows(sql, "limits_updated", user["id"]) == []

    done = client.post(path, data={**data, "csrf_token": token, "confirmed": "yes"})
    assert "apply from the user&#39;s next request" in client.get(done.headers["Location"]).get_data(as_text=True)
    limits, sources = effective(client, user["id"])
    assert limits["requests_per_minute"] == 7 and sources["requests_per_hour"] == "plan"
    (row,) = audit_rows(sql, "limits_updated", user["id"])
    assert row["actor"] == "admin:bootstrap" and row["details"]["rate_limits"]["requests_per_minute"] == 7


def test_resetting_limits_asks_first_then_drops_every_override(client, sql):
    user, _ = create_user(client, plan="trial")
    token = signed_in(client)
    path = f"/dashboard/users/{user['id']}/limits"
    post_confirmed(client, path, {"requests_per_minute": "7", "tokens_per_day": "5", "action": "save"}, token)
    reset = {"requests_per_minute": "7", "tokens_per_day": "5", "action": "reset"}  # the form sends its fields too
    asked = client.post(path, data={**reset, "csrf_token": token})
    page = asked.get_data(as_text=True)
    assert "Reset limits to the plan?" in page and "Every override is dropped" in page and "button danger" in page
    assert "7 → 10 (plan)" in page and "5 → 1,000,000 (plan)" in page
    assert len(overrides(sql, user["id"])) == 1  # nothing yet

    done = client.post(path, data={**reset, "csrf_token": token, "confirmed": "yes"})
    assert "Limits reset to the plan." in client.get(done.headers["Location"]).get_data(as_text=True)
    limits, sources = effective(client, user["id"])
    assert limits["requests_per_minute"] == 10 and set(sources.values()) == {"plan"}
    assert audit_rows(sql, "limits_updated", user["id"])[-1] == {
        "actor": "admin:bootstrap",
        "details": {"rate_limits": "plan"},
    }


def test_the_confirmation_and_the_user_page_note_a_window_a_longer_one_caps(client):
    user, _ = create_user(client, plan="trial")  # 100 requests an hour
    token = signed_in(client)
    page = f"/dashboard/users/{user['id']}"
    assert "capped-window" not in client.get(page).get_data(as_text=True)
    data = {"requests_per_minute": "300", "action": "save"}
    warning = "requests_per_minute is 300, above requests_per_hour (100)"
    assert warning in client.post(f"{page}/limits", data={**data, "csrf_token": token}).get_data(as_text=True)
    post_confirmed(client, f"{page}/limits", data, token)
    html = client.get(page).get_data(as_text=True)
    assert 'id="capped-requests_per_minute"' in html and warning in html


def test_bad_limits_are_a_400_page_naming_the_window(client, sql):
    user, _ = create_user(client)
    token = signed_in(client)
    data = {"requests_per_minute": "-1", "tokens_per_hour": "lots", "action": "save", "csrf_token": token}
    response = client.post(f"/dashboard/users/{user['id']}/limits", data={**data, "confirmed": "yes"})
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "<strong>requests per minute</strong>" in page and "<strong>tokens per hour</strong>" in page
    assert overrides(sql, user["id"]) == [] and audit_rows(sql, "limits_updated", user["id"]) == []


@pytest.mark.parametrize(
    ("action", "data"),
    [
        ("credits", {"amount": "5", "reason": "x"}),
        ("plan", {"plan": "dev"}),
        ("limits", {"requests_per_minute": "7", "action": "save"}),
        ("limits", {"action": "reset"}),
    ],
)
def test_forged_or_misdirected_forms_change_nothing(client, sql, action, data):
    user, _ = create_user(client, plan="trial")
    token = signed_in(client)
    forged = client.post(f"/dashboard/users/{user['id']}/{action}", data={**data, "confirmed": "yes"})
    assert forged.status_code == 400 and "csrf" in forged.get_data(as_text=True)
    wrong = client.post(
        f"/dashboard/users/{user['id']}/{action}", data={**data, "csrf_token": "forged", "confirmed": "yes"}
    )
    assert wrong.status_code == 400
    missing = client.post(f"/dashboard/users/999999/{action}", data={**data, "csrf_token": token, "confirmed": "yes"})
    assert missing.status_code == 404
    assert user_row(sql, user["id"]) == {"credits": 0, "reserved_credits": 0, "plan": "trial"}
    assert overrides(sql, user["id"]) == [] and sql("SELECT id FROM credit_transactions") == []
    assert audit_changes(sql, user["id"]) == []


def test_each_change_is_audited_under_the_signed_in_admins_id(client, sql):
    admin, admin_key = create_user(client, role="admin")
    user, _ = create_user(client, plan="trial")
    token = signed_in(client, admin_key)
    base = f"/dashboard/users/{user['id']}"
    post_confirmed(client, f"{base}/credits", {"amount": "1", "reason": "x"}, token)
    post_confirmed(client, f"{base}/plan", {"plan": "dev"}, token)
    post_confirmed(client, f"{base}/limits", {"requests_per_minute": "7", "action": "save"}, token)
    assert audit_changes(sql, user["id"]) == [
        {"action": "credits_adjusted", "actor": f"admin:{admin['id']}"},
        {"action": "user_updated", "actor": f"admin:{admin['id']}"},
        {"action": "limits_updated", "actor": f"admin:{admin['id']}"},
    ]
