"""Usage beyond the hold is charged in full: the balance may go into debt, recorded, and a debt
refuses every completion (402) until it is paid. Nothing is silently forgiven."""

from decimal import Decimal

import pytest

from tests.helpers import ADMIN, assert_error, create_user
from tests.helpers.upstream import UPSTREAM, chat, completion, mock_model_lists, mock_openrouter

# 100,000 prompt and 20,000 completion tokens on gpt-4o-mini: far more than "hello" with
# max_tokens 50 can be held for, and more than the user has.
REAL_COST = Decimal(100_000) * Decimal("0.00000015") + Decimal(20_000) * Decimal("0.0000006")  # 0.027


@pytest.fixture
def upstream(requests_mock):
    return mock_openrouter(requests_mock, 100_000, 20_000)


@pytest.fixture
def debtor(client, upstream):
    """A user with $0.001 whose one completion reported usage costing $0.027."""
    user, key = create_user(client, credits="0.001", plan="team")
    response = chat(client, key)
    assert response.status_code == 200, response.get_json()
    return user, key, response


def credit(client, user_id, amount):
    return client.post(f"/admin/users/{user_id}/credits", json={"amount": amount, "reason": "pay"}, headers=ADMIN)


def test_usage_beyond_the_hold_is_charged_in_full_and_leaves_a_debt(client, debtor, sql):
    user, _, response = debtor
    assert Decimal(response.headers["X-Gateway-Cost"]) == REAL_COST
    assert Decimal(response.headers["X-Gateway-Credits-Remaining"]) == Decimal("0.001") - REAL_COST
    [row] = sql("SELECT credits, reserved_credits FROM users WHERE id = %s", (user["id"],))
    assert row == {"credits": Decimal("0.001") - REAL_COST, "reserved_credits": 0}
    [usage] = sql("SELECT cost, exceeded_hold FROM usage_records WHERE user_id = %s", (user["id"],))
    assert usage == {"cost": REAL_COST, "exceeded_hold": True}
    [ledger] = sql("SELECT amount, balance_after, kind FROM credit_transactions WHERE kind = 'usage'")
    assert ledger == {"amount": -REAL_COST, "balance_after": Decimal("0.001") - REAL_COST, "kind": "usage"}
    [totals] = sql("SELECT cost FROM usage_daily_totals WHERE user_id = %s", (user["id"],))
    assert totals["cost"] == REAL_COST


def test_a_charge_within_the_hold_is_not_flagged(client, requests_mock, sql):
    mock_model_lists(requests_mock)
    requests_mock.post(f"{UPSTREAM}/chat/completions", json=completion(5, 5))
    user, key = create_user(client, credits="1.00", plan="team")
    assert chat(client, key).status_code == 200
    assert sql("SELECT exceeded_hold FROM usage_records WHERE user_id = %s", (user["id"],)) == [
        {"exceeded_hold": False}
    ]


def test_a_debt_refuses_every_completion_even_a_free_one_without_calling_upstream(client, debtor, upstream, sql):
    _, key, _ = debtor
    before = upstream.call_count
    error = assert_error(chat(client, key), 402, "insufficient_credits")
    assert Decimal(error["details"]["credits"]) < 0
    assert_error(chat(client, key, model="test/free-model"), 402, "insufficient_credits")
    assert upstream.call_count == before
    assert sql("SELECT count(*) AS n FROM usage_records")[0]["n"] == 1


def test_a_zero_balance_may_still_use_a_free_model(client, requests_mock):
    mock_model_lists(requests_mock)
    requests_mock.post(f"{UPSTREAM}/chat/completions", json=completion(5, 5))
    _, key = create_user(client, credits="0", plan="team")
    assert chat(client, key, model="test/free-model").status_code == 200


def test_paying_part_of_a_debt_is_accepted_but_serves_nothing_until_it_is_paid(client, debtor):
    user, key, _ = debtor
    partial = credit(client, user["id"], "0.01")
    assert partial.status_code == 200, partial.get_json()
    assert Decimal(partial.get_json()["credits"]) == Decimal("0.011") - REAL_COST
    assert_error(chat(client, key), 402, "insufficient_credits")
    assert credit(client, user["id"], "0.02").status_code == 200
    assert chat(client, key).status_code == 200


def test_an_admin_debit_never_deepens_a_debt(client, debtor, sql):
    user, _, _ = debtor
    assert_error(credit(client, user["id"], "-0.001"), 409, "insufficient_credits")
    [row] = sql("SELECT credits FROM users WHERE id = %s", (user["id"],))
    assert row["credits"] == Decimal("0.001") - REAL_COST
