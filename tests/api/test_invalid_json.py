"""A body that is not JSON gets the envelope with a message saying so, on every JSON route."""

import pytest

from tests.conftest import ADMIN_API_KEY

ADMIN = {"Authorization": f"Bearer {ADMIN_API_KEY}", "Content-Type": "application/json"}


@pytest.mark.parametrize("body", [b"{bad", b'{"email": "a@example.com",}', b"\xff\xfe"])
def test_invalid_json_body_is_a_400_envelope_saying_the_body_is_not_json(client, body):
    response = client.post("/admin/users", data=body, headers=ADMIN)
    error = response.get_json()["error"]
    assert response.status_code == 400
    assert error["code"] == "bad_request" and error["status"] == 400
    assert error["message"].startswith("the request body is not valid")
    assert "browser" not in error["message"]
