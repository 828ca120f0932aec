"""The request log in a real browser: reach it from the nav, filter by user, open one request's detail."""

import requests

from tests.conftest import ADMIN_API_KEY
from tests.helpers import ADMIN, bearer


def create_user(gateway, email):
    """A user made through the running gateway's admin API; (user, key)."""
    body = {"email": email, "credits": "5.00"}
    response = requests.post(f"{gateway.url}/admin/users", json=body, headers=ADMIN, timeout=10)
    response.raise_for_status()
    return response.json()["user"], response.json()["api_key"]


def complete(gateway, key, request_id):
    """One real chat completion through the gateway (and the fake OpenRouter) with this X-Request-ID."""
    body = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]}
    headers = {**bearer(key), "X-Request-ID": request_id, "X-Gateway-Tags": "browser"}
    response = requests.post(f"{gateway.url}/v1/chat/completions", json=body, headers=headers, timeout=30)
    response.raise_for_status()


def listed(browser):
    """The request ids in the table, top to bottom."""
    return [link.text for link in browser.all("#request-rows tbody tr td:nth-child(2) a")]


def test_filter_the_request_log_by_user_and_open_a_request(browser, gateway):
    alice, alice_key = create_user(gateway, "alice-requests@example.com")
    _, bob_key = create_user(gateway, "bob-requests@example.com")
    complete(gateway, alice_key, "alice-1")
    complete(gateway, bob_key, "bob-1")
    complete(gateway, alice_key, "alice-2")
    browser.sign_in(gateway.url, ADMIN_API_KEY)
    browser.click("#nav-requests")
    assert browser.text("h1") == "Requests"
    assert listed(browser) == ["alice-2", "bob-1", "alice-1"]

    browser.fill("#user_id", str(alice["id"]))
    browser.click("#filter-requests")
    assert listed(browser) == ["alice-2", "alice-1"]
    assert browser.find("#user_id").get_attribute("value") == str(alice["id"])

    browser.click("#request-rows a[href$='/alice-1']")
    assert browser.text("h1") == "Request alice-1"
    assert browser.text("#request-status").lower() == "success"
    assert browser.text("#request-tags") == "browser"
    assert browser.text("#request-ip") == "127.0.0.1"
    assert "1 request" in browser.text("#same-request-id")

    browser.click("#same-user-requests")
    assert listed(browser) == ["alice-2", "alice-1"]
