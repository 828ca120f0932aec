"""Organization actions in a real browser, each through its confirmation page: create an org, grant its
credits, add a member, change their role and org budget, remove them (their org key stops), suspend the org."""

import requests
from selenium.webdriver.support.ui import Select

from tests.conftest import ADMIN_API_KEY
from tests.helpers import ADMIN, bearer


def admin_call(gateway, method, path, **body):
    """``<method> <path>`` on the admin API, as JSON."""
    response = requests.request(method, f"{gateway.url}{path}", json=body or None, headers=ADMIN, timeout=10)
    response.raise_for_status()
    return response.json()


def create_user(gateway, email):
    """A user made through the running gateway's admin API; (user, first key)."""
    created = admin_call(gateway, "POST", "/admin/users", email=email)
    return created["user"], created["api_key"]


def org_key(gateway, key, org_id):
    """A key of the org, made by a member with their own key."""
    body = {"name": "org key", "org_id": org_id}
    response = requests.post(f"{gateway.url}/user/api-keys", json=body, headers=bearer(key), timeout=10)
    response.raise_for_status()
    return response.json()["api_key"]


def balance_status(gateway, key):
    """The status ``GET /user/balance`` answers ``key`` with (200 while it works)."""
    return requests.get(f"{gateway.url}/user/balance", headers=bearer(key), timeout=10).status_code


def test_create_an_org_after_confirming(browser, gateway):
    browser.sign_in(gateway.url, ADMIN_API_KEY)
    browser.open(f"{gateway.url}/dashboard/")
    browser.click("#nav-orgs")
    browser.fill("#name", "Browser Org")
    Select(browser.find("#plan")).select_by_value("team")
    browser.fill("#credits", "5.00")
    browser.fill("#budget", "20.00")
    browser.fill("#allowed_models", "openai/*")
    browser.click("#create-org")
    assert browser.text("h1") == "Create this organization?"
    summary = browser.text("#confirm")
    assert "Browser Org" in summary and "$5.00" in summary and "$20.00, monthly" in summary
    assert admin_call(gateway, "GET", "/admin/orgs")["total"] == 0  # nothing yet
    browser.click("#confirm-action")
    assert browser.text("h1") == "Browser Org"
    assert browser.text(".flash.success") == "Created Browser Org."
    assert browser.text("#org-credits") == "$5.00"
    (org,) = admin_call(gateway, "GET", "/admin/orgs")["orgs"]
    assert (org["plan"], org["credits"], org["budget"], org["allowed_models"]) == (
        "team",
        "5.00",
        "20.00",
        ["openai/*"],
    )


def test_grant_credits_then_suspend_an_org(browser, gateway):
    org = admin_call(gateway, "POST", "/admin/orgs", name="Paying Org", credits="1.00")
    user, key = create_user(gateway, "org-holder@example.com")
    admin_call(gateway, "POST", f"/admin/orgs/{org['id']}/members", user_id=user["id"], role="owner")
    okey = org_key(gateway, key, org["id"])
    browser.sign_in(gateway.url, ADMIN_API_KEY)
    browser.open(f"{gateway.url}/dashboard/orgs/{org['id']}")
    browser.fill("#amount", "4.50")
    browser.fill("#reason", "invoice 12")
    browser.click("#grant-credits")
    assert browser.text("h1") == "Grant credits?"
    assert "invoice 12" in browser.text("#confirm")
    browser.click("#confirm-action")
    assert browser.text(".flash.success") == "Granted $4.50; balance is now $5.50."
    assert admin_call(gateway, "GET", f"/admin/orgs/{org['id']}")["credits"] == "5.50"

    browser.click("#suspend-org")
    assert browser.text("h1") == "Suspend this organization?"
    assert balance_status(gateway, okey) == 200  # nothing yet
    browser.click("#confirm-action")
    assert browser.text(".flash.success") == "Organization suspended."
    assert admin_call(gateway, "GET", f"/admin/orgs/{org['id']}")["status"] == "suspended"
    assert balance_status(gateway, okey) == 401
    assert balance_status(gateway, key) == 200  # personal keys keep working
    assert browser.find("#reactivate-org")


def test_add_change_and_remove_a_member(browser, gateway):
    org = admin_call(gateway, "POST", "/admin/orgs", name="Team Org", credits="1.00", budget="10.00")
    user, key = create_user(gateway, "joiner@example.com")
    members = f"/admin/orgs/{org['id']}/members"
    browser.sign_in(gateway.url, ADMIN_API_KEY)
    browser.open(f"{gateway.url}/dashboard/orgs/{org['id']}")
    browser.fill("#member-user", "joiner@example.com")
    Select(browser.find("#member-role")).select_by_value("admin")
    browser.fill("#member-budget", "3.00")
    browser.click("#add-member-button")
    assert browser.text("h1") == "Add this member?"
    assert f"joiner@example.com (id {user['id']})" in browser.text("#confirm")
    assert admin_call(gateway, "GET", members)["members"] == []  # nothing yet
    browser.click("#confirm-action")
    assert browser.text(".flash.success") == "Added joiner@example.com as admin."
    assert browser.text(f"#member-summary-{user['id']}") == "admin · $3.00, monthly"

    Select(browser.find(f"#member-role-{user['id']}")).select_by_value("member")
    browser.fill(f"#member-budget-{user['id']}", "2.00")
    browser.click(f"#save-member-{user['id']}")
    assert browser.text("h1") == "Change this member?"
    assert "admin → member" in browser.text("#confirm")
    browser.click("#confirm-action")
    (member,) = admin_call(gateway, "GET", members)["members"]
    assert (member["role"], member["budget"]) == ("member", "2.00")
    assert browser.text(f"#member-summary-{user['id']}") == "member · $2.00, monthly"

    okey = org_key(gateway, key, org["id"])
    browser.click(f"#remove-member-{user['id']}")
    assert browser.text("h1") == "Remove this member?"
    assert "revoked at once" in browser.text("#confirm")
    browser.click("#confirm-action")
    assert browser.text(".flash.success").startswith("Removed joiner@example.com")
    assert admin_call(gateway, "GET", members)["members"] == []
    assert balance_status(gateway, okey) == 401
    assert balance_status(gateway, key) == 200
    assert "No members yet" in browser.text("#org-members")


def test_a_refused_member_change_is_shown_on_a_page(browser, gateway):
    org = admin_call(gateway, "POST", "/admin/orgs", name="Owned Org")
    user, _ = create_user(gateway, "only-owner@example.com")
    admin_call(gateway, "POST", f"/admin/orgs/{org['id']}/members", user_id=user["id"], role="owner")
    browser.sign_in(gateway.url, ADMIN_API_KEY)
    browser.open(f"{gateway.url}/dashboard/orgs/{org['id']}")
    browser.click(f"#remove-member-{user['id']}")
    browser.click("#confirm-action")
    assert "at least one owner" in browser.text("#form-error")
    browser.click("#form-error a")
    assert browser.text("h1") == "Owned Org"
