"""Small helpers for API tests: auth headers, users and keys made through the HTTP API, envelopes.

Everything goes through the admin and user endpoints (never straight into the database), so a
test that uses these helpers also exercises the real account code paths.
"""

import itertools

from tests.conftest import ADMIN_API_KEY

_emails = itertools.count(1)


def bearer(key):
    """``Authorization: Bearer <key>`` headers."""
    return {"Authorization": f"Bearer {key}"}


ADMIN = bearer(ADMIN_API_KEY)  # the bootstrap admin key's headers


def create_user(client, **fields):
    """Create a user via ``POST /admin/users`` (bootstrap key); return (user dict, full first key).

    ``email`` defaults to a fresh unique address; any other body field (credits, plan, role,
    username) passes through unchanged.
    """
    body = {"email": f"user{next(_emails)}@example.com", **fields}
    response = client.post("/admin/users", json=body, headers=ADMIN)
    assert response.status_code == 201, response.get_json()
    payload = response.get_json()
    return payload["user"], payload["api_key"]


def create_key(client, key, **fields):
    """Create another key via ``POST /user/api-keys`` with ``key``; return (key dict, full new key)."""
    response = client.post("/user/api-keys", json={"name": "extra", **fields}, headers=bearer(key))
    assert response.status_code == 201, response.get_json()
    payload = response.get_json()
    return payload["key"], payload["api_key"]


def assert_error(response, status, code):
    """Assert ``response`` is the error envelope with this status and code; return its ``error``."""
    body = response.get_json()
    assert response.status_code == status, body
    assert set(body) == {"error"}, body
    assert body["error"]["status"] == status
    assert body["error"]["code"] == code, body
    assert body["error"]["message"]
    return body["error"]
