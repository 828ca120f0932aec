"""POST /admin/users/<id>/credits and GET /user/balance: a numeric ledger that never loses an update."""

import requests

from tests.helpers import ADMIN, assert_error, bearer, create_user, live_server, run_together


def adjust(client, user_id, amount, reason="support", headers=ADMIN):
    """POST a credit adjustment."""
    return client.post(f"/admin/users/{user_id}/credits", json={"amount": amount, "reason": reason}, headers=headers)


def test_grant_adds_credits_with_one_ledger_row_and_audit_entry(client, sql):
    user, _ = create_user(client)
    response = adjust(client, user["id"], "5.00", "welcome bonus")
    assert response.status_code == 200
    assert response.get_json() == {
        "user_id": user["id"],
        "amount": "5.00",
        "credits": "5.00",
        "reason": "welcome bonus",
    }
    [entry] = sql("SELECT amount::text, balance_after::text, kind, reason, actor, request_id FROM credit_transactions")
    assert entry == {
        "amount": "5.0000000000",
        "balance_after": "5.0000000000",
        "kind": "grant",
        "reason": "welcome bonus",
        "actor": "admin:bootstrap",
        "request_id": response.headers["X-Request-ID"],
    }
    [audit] = sql("SELECT user_id, actor, details FROM api_key_audit_logs WHERE action = 'credits_adjusted'")
    assert audit == {
        "user_id": user["id"],
        "actor": "admin:bootstrap",
        "details": {"amount": "5.00", "reason": "welcome bonus", "balance_after": "5.00"},
    }


def test_money_is_numeric_in_every_column(sql):
    rows = sql(
        "SELECT table_name, column_name, data_type FROM information_schema.columns"
        " WHERE table_name IN ('users', 'credit_transactions')"
        " AND column_name IN ('credits', 'reserved_credits', 'amount', 'balance_after')"
    )
    assert len(rows) == 4 and {r["data_type"] for r in rows} == {"numeric"}


def test_decimal_amounts_add_exactly(client, sql):
    user, key = create_user(client)
    for amount in ("0.1", "0.2", 0.1, "0.0000000001"):
        assert adjust(client, user["id"], amount).status_code == 200
    assert client.get("/user/balance", headers=bearer(key)).get_json()["credits"] == "0.4000000001"
    balances = sql("SELECT balance_after::text FROM credit_transactions ORDER BY id")
    assert [b["balance_after"] for b in balances] == ["0.1000000000", "0.3000000000", "0.4000000000", "0.4000000001"]


def test_debit_removes_credits_as_a_negative_ledger_row(client, sql):
    user, _ = create_user(client, credits="10")
    response = adjust(client, user["id"], "-2.50", "refund clawback")
    assert response.status_code == 200 and response.get_json()["credits"] == "7.50"
    last = sql("SELECT amount::text, balance_after::text, kind FROM credit_transactions ORDER BY id DESC LIMIT 1")
    assert last == [{"amount": "-2.5000000000", "balance_after": "7.5000000000", "kind": "debit"}]


def test_debit_below_zero_is_409_and_changes_nothing(client, sql):
    user, _ = create_user(client, credits="1.00")
    error = assert_error(adjust(client, user["id"], "-1.01"), 409, "insufficient_credits")
    assert error["details"] == {"credits": "1.00", "reserved": "0.00", "amount": "-1.01"}
    assert sql("SELECT credits::text FROM users") == [{"credits": "1.0000000000"}]
    assert sql("SELECT count(*) AS n FROM credit_transactions") == [{"n": 1}]
    assert sql("SELECT count(*) AS n FROM api_key_audit_logs WHERE action = 'credits_adjusted'") == [{"n": 1}]
    assert adjust(client, user["id"], "-1.00").get_json()["credits"] == "0.00"


def test_debit_cannot_take_credits_held_by_requests_in_flight(client, sql):
    user, _ = create_user(client, credits="10")
    sql("UPDATE users SET reserved_credits = 4 WHERE id = %s", (user["id"],))
    assert_error(adjust(client, user["id"], "-7"), 409, "insufficient_credits")
    assert adjust(client, user["id"], "-6").get_json()["credits"] == "4.00"


def test_balance_overflow_is_409_not_a_server_error(client, sql):
    user, _ = create_user(client)
    sql("UPDATE users SET credits = 9999999000 WHERE id = %s", (user["id"],))
    assert_error(adjust(client, user["id"], "999999999"), 409, "credit_limit_exceeded")
    assert sql("SELECT credits::text FROM users") == [{"credits": "9999999000.0000000000"}]


def test_unknown_user_is_404(client, sql):
    assert_error(adjust(client, 999, "1"), 404, "user_not_found")
    assert sql("SELECT count(*) AS n FROM credit_transactions") == [{"n": 0}]


def test_invalid_adjustment_is_422_naming_the_field(client, sql):
    user, _ = create_user(client)
    cases = [
        ({"amount": "0", "reason": "x"}, "amount"),
        ({"amount": "abc", "reason": "x"}, "amount"),
        ({"amount": "Infinity", "reason": "x"}, "amount"),
        ({"amount": "1e9", "reason": "x"}, "amount"),
        ({"amount": "0.00000000001", "reason": "x"}, "amount"),
        ({"amount": True, "reason": "x"}, "amount"),
        ({"reason": "x"}, "amount"),
        ({"amount": "1"}, "reason"),
        ({"amount": "1", "reason": ""}, "reason"),
    ]
    for body, field in cases:
        response = client.post(f"/admin/users/{user['id']}/credits", json=body, headers=ADMIN)
        assert field in assert_error(response, 422, "validation_error")["details"]["fields"]["json"], body
    assert sql("SELECT count(*) AS n FROM credit_transactions") == [{"n": 0}]


def test_admin_user_adjustments_name_that_admin_as_actor(client, sql):
    admin, admin_key = create_user(client, role="admin")
    user, _ = create_user(client)
    assert adjust(client, user["id"], "3", headers=bearer(admin_key)).status_code == 200
    assert sql("SELECT actor FROM credit_transactions") == [{"actor": f"admin:{admin['id']}"}]


def test_balance_shows_masked_key_credits_status_and_plan(client):
    user, key = create_user(client, credits="2.5", plan="dev")
    response = client.get("/user/balance", headers=bearer(key))
    assert response.status_code == 200
    body = response.get_json()
    assert body == {
        **body,
        "user_id": user["id"],
        "api_key": f"{key[:11]}…{key[-4:]}",
        "credits": "2.50",
        "status": "active",
        "plan": "dev",
    }
    assert key not in response.get_data(as_text=True)


def test_balance_requires_a_key(client):
    assert_error(client.get("/user/balance"), 401, "unauthorized")


def test_fifty_concurrent_grants_all_land(make_app, sql):
    # Real concurrency: a threaded HTTP server, 50 client threads released together.
    app = make_app(DB_POOL_MAX=60)
    user, _ = create_user(app.test_client())
    with live_server(app) as url:

        def grant(_):
            body = {"amount": "1.00", "reason": "load"}
            return requests.post(f"{url}/admin/users/{user['id']}/credits", json=body, headers=ADMIN, timeout=30)

        statuses = [response.status_code for response in run_together(grant, range(50))]
    assert statuses == [200] * 50
    assert sql("SELECT credits::text FROM users") == [{"credits": "50.0000000000"}]
    ledger = sql("SELECT balance_after FROM credit_transactions ORDER BY balance_after")
    # Each grant saw the previous one: balances after are exactly 1, 2, ..., 50.
    assert [int(row["balance_after"]) for row in ledger] == list(range(1, 51))
