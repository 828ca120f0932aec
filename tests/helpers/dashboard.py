"""The operator dashboard's sign-in form for API tests: its CSRF token and a signed-in client."""

import re

from tests.conftest import ADMIN_API_KEY

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(client, path="/dashboard/login"):
    """The CSRF token of the form on ``path``."""
    response = client.get(path)
    match = CSRF.search(response.get_data(as_text=True))
    assert match, response.get_data(as_text=True)[:500]
    return match.group(1)


def sign_in(client, key=ADMIN_API_KEY, **environ):
    """POST the sign-in form with a fresh token; return the response."""
    token = csrf_of(client)
    return client.post(
        "/dashboard/login", data={"api_key": key, "csrf_token": token, "next": ""}, environ_overrides=environ
    )


def post_confirmed(client, path, data, token):
    """POST a dashboard action form, check the confirmation page came back, then confirm; return the last response.

    The first POST must change nothing: callers assert on the database after this returns.
    """
    asked = client.post(path, data={**data, "csrf_token": token})
    assert asked.status_code == 200 and 'id="confirm-action"' in asked.get_data(as_text=True), asked.status_code
    return client.post(path, data={**data, "csrf_token": token, "confirmed": "yes"})
