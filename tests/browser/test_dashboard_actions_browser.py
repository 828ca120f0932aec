"""Dashboard actions in a real browser: create a user and receive their key once; revoke a key after confirming."""

import requests

from tests.conftest import ADMIN_API_KEY
from tests.helpers import ADMIN, bearer


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
