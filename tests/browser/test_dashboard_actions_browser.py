"""Dashboard actions in a real browser, each through its confirmation page: create a user and receive
their key once; revoke or rotate a key; suspend and reactivate a user; grant and remove a user's
credits; change their plan; override their limits and reset them to the plan; a user's and a key's
budget and allowed models; lift an IP block."""

import requests
from selenium.webdriver.support.ui import Select

from tests.conftest import ADMIN_API_KEY
from tests.helpers import ADMIN, bearer


def create_user(gateway, email):
    """A user made through the running gateway's admin API; (user, first key)."""
    response = requests.post(f"{gateway.url}/admin/users", json={"email": email}, headers=ADMIN, timeout=10)
    response.raise_for_status()
    return response.json()["user"], response.json()["api_key"]


def admin_get(gateway, path):
    """``GET <path>`` on the admin API, as JSON."""
    response = requests.get(f"{gateway.url}{path}", headers=ADMIN, timeout=10)
    response.raise_for_status()
    return response.json()


def balance_status(gateway, key):
    """The status ``GET /user/balance`` answers ``key`` with (200 while it works)."""
    return requests.get(f"{gateway.url}/user/balance", headers=bearer(key), timeout=10).status_code


def fill_budget_form(browser, budget, period, models):
    """Fill the budget-and-models form on this page (user or key) and submit it."""
    browser.fill("#budget", budget)
    Select(browser.find("#budget_period")).select_by_value(period)
    browser.fill("#allowed_models", models)
    browser.click("#save-budget")


def test_create_a_user_and_use_the_key_shown_once(browser, gateway):
    browser.sign_in(gateway.url, ADMIN_API_KEY)
    browser.open(f"{gateway.url}/dashboard/users")
    browser.click("#new-user")
    browser.fill("#email", "made-in-browser@example.com")
    browser.fill("#credits", "3.00")
    browser.click("#create-user")
    assert "made-in-browser@example.com" in browser.text("#confirm")
    browser.click("#confirm-action")
    key = browser.text("#new-api-key")
    balance = requests.get(f"{gateway.url}/user/balance", headers=bearer(key), timeout=10)
    assert balance.status_code == 200 and balance.json()["credits"] == "3.00"
    browser.click("#to-user")
    assert browser.text("h1") == "made-in-browser@example.com"
    assert "user_created" in browser.text("#user-audit") and key not in browser.driver.page_source


def test_revoke_a_key_after_confirming(browser, gateway):
    created = requests.post(
        f"{gateway.url}/admin/users", json={"email": "holder@example.com"}, headers=ADMIN, timeout=10
    )
    user, first_key = created.json()["user"], created.json()["api_key"]
    second = requests.post(
        f"{gateway.url}/user/api-keys", json={"name": "spare"}, headers=bearer(first_key), timeout=10
    )
    spare_id, spare_key = second.json()["key"]["id"], second.json()["api_key"]
    browser.sign_in(gateway.url, ADMIN_API_KEY)
    browser.open(f"{gateway.url}/dashboard/users/{user['id']}")
    browser.click(f"#revoke-{spare_id}")
    assert "Revoke this key?" in browser.text("h1")
    browser.click("#confirm-action")
    assert "Revoked" in browser.text(".flash.success")
    assert "revoked" in browser.text(f"#key-{spare_id}").lower()  # pills are styled upper-case
    assert requests.get(f"{gateway.url}/user/balance", headers=bearer(spare_key), timeout=10).status_code == 401
    assert requests.get(f"{gateway.url}/user/balance", headers=bearer(first_key), timeout=10).status_code == 200


def test_suspend_then_reactivate_a_user_after_confirming(browser, gateway):
    user, key = create_user(gateway, "pausable@example.com")
    browser.sign_in(gateway.url, ADMIN_API_KEY)
    browser.open(f"{gateway.url}/dashboard/users/{user['id']}")
    browser.click("#suspend-user")
    assert browser.text("h1") == "Suspend this user?"
    assert "pausable@example.com" in browser.text("#confirm")
    assert admin_get(gateway, f"/admin/users/{user['id']}")["status"] == "active"  # nothing yet
    browser.click("#confirm-action")
    assert browser.text(".flash.success") == "User suspended."
    assert admin_get(gateway, f"/admin/users/{user['id']}")["status"] == "suspended"
    assert balance_status(gateway, key) != 200
    browser.click("#reactivate-user")
    assert browser.text("h1") == "Reactivate this user?"
    browser.click("#confirm-action")
    assert browser.text(".flash.success") == "User reactivated."
    assert admin_get(gateway, f"/admin/users/{user['id']}")["status"] == "active"
    assert balance_status(gateway, key) == 200
    assert browser.find("#suspend-user")  # the page offers to suspend again


def test_rotate_a_key_and_use_the_replacement_shown_once(browser, gateway):
    user, old_key = create_user(gateway, "rotating@example.com")
    (key,) = admin_get(gateway, f"/admin/users/{user['id']}/api-keys")["keys"]
    browser.sign_in(gateway.url, ADMIN_API_KEY)
    browser.open(f"{gateway.url}/dashboard/users/{user['id']}")
    browser.click(f"#rotate-{key['id']}")  # the grace left at its first choice: none
    assert browser.text("h1") == "Rotate this key?"
    assert "the old key stops now" in browser.text("#confirm")
    browser.click("#confirm-action")
    assert browser.text("h1") == "Key rotated"
    new_key = browser.text("#new-api-key")
    assert new_key.startswith("gw_") and new_key != old_key
    assert balance_status(gateway, new_key) == 200
    assert balance_status(gateway, old_key) == 401
    browser.click("#to-user")
    assert "rotated" in browser.text(f"#key-{key['id']}").lower()  # pills are styled upper-case
    assert new_key not in browser.driver.page_source  # shown once, on the answer only


def test_set_a_users_budget_and_allowed_models_after_confirming(browser, gateway):
    user, _ = create_user(gateway, "capped@example.com")
    browser.sign_in(gateway.url, ADMIN_API_KEY)
    browser.open(f"{gateway.url}/dashboard/users/{user['id']}")
    fill_budget_form(browser, "50.00", "monthly", "openai/gpt-4o-mini\nanthropic/*")
    assert browser.text("h1") == "Change this user's budget and models?"
    summary = browser.text("#confirm")
    assert "$50.00, monthly" in summary and "openai/gpt-4o-mini, anthropic/*" in summary
    assert admin_get(gateway, f"/admin/users/{user['id']}")["budget"] is None  # nothing yet
    browser.click("#confirm-action")
    assert browser.text(".flash.success") == "Budget and allowed models saved."
    saved = admin_get(gateway, f"/admin/users/{user['id']}")
    assert saved["budget"] == "50.00" and saved["budget_period"] == "monthly"
    assert saved["allowed_models"] == ["openai/gpt-4o-mini", "anthropic/*"]
    assert "50.00" in browser.text(f"#budget-user-{user['id']}")


def test_set_a_keys_budget_after_confirming(browser, gateway):
    user, _ = create_user(gateway, "key-capped@example.com")
    (key,) = admin_get(gateway, f"/admin/users/{user['id']}/api-keys")["keys"]
    browser.sign_in(gateway.url, ADMIN_API_KEY)
    browser.open(f"{gateway.url}/dashboard/users/{user['id']}/keys/{key['id']}")
    fill_budget_form(browser, "5.00", "daily", "openai/gpt-4o-mini")
    assert browser.text("h1") == "Change this key's budget and models?"
    assert "$5.00, daily" in browser.text("#confirm")
    browser.click("#confirm-action")
    assert browser.text(".flash.success") == "The key's budget and allowed models are saved."
    assert browser.text("#key-budget") == "$5.00, daily"
    (saved,) = admin_get(gateway, f"/admin/users/{user['id']}/api-keys")["keys"]
    assert saved["budget"] == "5.00" and saved["budget_period"] == "daily"
    assert saved["allowed_models"] == ["openai/gpt-4o-mini"]


def test_lift_an_ip_block_after_confirming(browser, gateway):
    block = {"ip": "203.0.113.9", "ttl_seconds": 600, "reason": "browser test"}
    requests.post(f"{gateway.url}/admin/blocked-ips", json=block, headers=ADMIN, timeout=10).raise_for_status()
    browser.sign_in(gateway.url, ADMIN_API_KEY)
    browser.open(f"{gateway.url}/dashboard/ip-blocks")
    assert "203.0.113.9" in browser.text("#ip-blocks")
    browser.click("#ip-blocks button")
    assert browser.text("h1") == "Lift this block?"
    assert "203.0.113.9" in browser.text("#confirm")
    assert len(admin_get(gateway, "/admin/blocked-ips")["blocks"]) == 1  # nothing yet
    browser.click("#confirm-action")
    assert browser.text(".flash.success") == "Lifted the block on 203.0.113.9."
    assert admin_get(gateway, "/admin/blocked-ips") == {"blocks": []}
    assert "No address is blocked" in browser.text("body")


def test_grant_credits_after_confirming_and_a_refused_debit(browser, gateway):
    user, _ = create_user(gateway, "grantee@example.com")
    browser.sign_in(gateway.url, ADMIN_API_KEY)
    browser.open(f"{gateway.url}/dashboard/users/{user['id']}")
    browser.fill("#amount", "5.00")
    browser.fill("#reason", "ticket 12")
    browser.click("#grant-credits")
    assert browser.text("h1") == "Grant credits?"
    summary = browser.text("#confirm")
    assert "grantee@example.com" in summary and "Grant $5.00" in summary and "ticket 12" in summary
    assert "$0.00 → $5.00" in summary
    assert admin_get(gateway, f"/admin/users/{user['id']}")["credits"] == "0.00"  # nothing yet
    browser.click("#confirm-action")
    assert browser.text(".flash.success") == "Granted $5.00; balance is now $5.00."
    assert browser.text("#user-credits") == "$5.00"
    assert "credits_adjusted" in browser.text("#user-audit")
    browser.fill("#amount", "-9")
    browser.fill("#reason", "too much")
    browser.click("#grant-credits")
    assert browser.text("h1") == "Remove credits?"
    browser.click("#confirm-action")
    assert "below zero" in browser.text("#form-error")  # a 409 page, not an error
    browser.click("#form-error a")
    assert browser.text("#user-credits") == "$5.00"


def test_change_the_plan_after_confirming(browser, gateway):
    user, _ = create_user(gateway, "moving@example.com")
    browser.sign_in(gateway.url, ADMIN_API_KEY)
    browser.open(f"{gateway.url}/dashboard/users/{user['id']}")
    Select(browser.find("#plan")).select_by_value("dev")
    browser.click("#change-plan")
    assert browser.text("h1") == "Change this user's plan?"
    assert f"{user['plan']} → dev" in browser.text("#confirm")
    browser.click("#cancel-action")
    assert browser.text("#user-plan") == user["plan"]  # cancelled: nothing changed
    Select(browser.find("#plan")).select_by_value("dev")
    browser.click("#change-plan")
    browser.click("#confirm-action")
    assert browser.text(".flash.success") == "Plan changed."
    assert browser.text("#user-plan") == "dev"
    assert admin_get(gateway, f"/admin/users/{user['id']}")["plan"] == "dev"


def test_override_limits_then_reset_them_to_the_plan_after_confirming(browser, gateway):
    user, _ = create_user(gateway, "limited@example.com")
    plan_minute = admin_get(gateway, f"/admin/limit/{user['id']}")["rate_limits"]["requests_per_minute"]
    browser.sign_in(gateway.url, ADMIN_API_KEY)
    browser.open(f"{gateway.url}/dashboard/users/{user['id']}")
    browser.fill("input[name=requests_per_minute]", "7")
    browser.click("#save-limits")
    assert browser.text("h1") == "Change this user's limits?"
    assert f"{plan_minute:,} (plan) → 7" in browser.text("#confirm")
    assert admin_get(gateway, f"/admin/limit/{user['id']}")["sources"]["requests_per_minute"] == "plan"  # nothing yet
    browser.click("#confirm-action")
    assert "Limits updated" in browser.text(".flash.success")
    assert browser.text("#limit-requests_per_minute") == "7"
    browser.click("#reset-limits")
    assert browser.text("h1") == "Reset limits to the plan?"
    assert "Every override is dropped" in browser.text("#confirm")
    assert f"7 → {plan_minute:,} (plan)" in browser.text("#confirm")
    browser.click("#confirm-action")
    assert browser.text(".flash.success") == "Limits reset to the plan."
    assert browser.text("#limit-requests_per_minute") == f"{plan_minute:,}"
    assert set(admin_get(gateway, f"/admin/limit/{user['id']}")["sources"].values()) == {"plan"}
