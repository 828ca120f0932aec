"""After heavy concurrent load, every user's books balance exactly."""

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import requests

from tests.e2e.test_proxy_e2e import ADMIN

TOTAL_REQUESTS = 10_000
CONCURRENCY = 64
USERS = 20
OPENING = Decimal("100.00")


def test_ten_thousand_completions_leave_every_ledger_exact(gateway, sql):
    server = gateway(workers=4)
    keys = []
    for index in range(USERS):
        body = {"email": f"load{index}@example.com", "credits": str(OPENING), "plan": "enterprise"}
        created = requests.post(f"{server.url}/admin/users", json=body, headers=ADMIN, timeout=10).json()
        keys.append((created["user"]["id"], created["api_key"]))
    local = threading.local()
    statuses = Counter()

    def send(index):
        session = getattr(local, "session", None) or requests.Session()
        local.session = session
        _, key = keys[index % USERS]
        body = {
            "model": "openai/gpt-4o-mini",
            "messages": [{"role": "user", "content": f"request {index}"}],
            "max_tokens": 8,
            "stream": index % 10 == 0,
        }
        response = session.post(
            f"{server.url}/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=60
        )
        response.content  # noqa: B018 - read the whole (possibly streamed) body
        return response.status_code

    with ThreadPoolExecutor(CONCURRENCY) as pool:
        statuses.update(pool.map(send, range(TOTAL_REQUESTS)))
    assert statuses == Counter({200: TOTAL_REQUESTS}), statuses
    for user_id, _ in keys:
        [books] = sql(
            "SELECT u.credits, u.reserved_credits,"
            " (SELECT coalesce(sum(cost), 0) FROM usage_records WHERE user_id = u.id) AS usage_cost,"
            " (SELECT count(*) FROM usage_records WHERE user_id = u.id) AS usage_rows,"
            " (SELECT coalesce(-sum(amount), 0) FROM credit_transactions"
            "   WHERE user_id = u.id AND kind = 'usage') AS ledger_debits"
            " FROM users u WHERE u.id = %s",
            (user_id,),
        )
        assert books["usage_rows"] == TOTAL_REQUESTS // USERS
        assert OPENING - books["credits"] == books["usage_cost"] == books["ledger_debits"] > 0
        assert books["reserved_credits"] == 0
