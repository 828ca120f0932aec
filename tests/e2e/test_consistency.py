"""After heavy concurrent load over every metered endpoint (chat, embeddings, responses), every
user's books balance exactly, and match what upstream reported."""

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import requests

from ops_gateway.upstream.fake_openrouter import MODELS
from tests.e2e.test_proxy_e2e import ADMIN

EMBEDDERS = [m["id"] for m in MODELS if "embeddings" in m["architecture"]["output_modalities"]]
CHATTERS = [m["id"] for m in MODELS if m["id"] not in EMBEDDERS]

TOTAL_REQUESTS = 10_000
CONCURRENCY = 64
USERS = 20
OPENING = Decimal("100.00")
# Upstream bills tool definitions as prompt: they make the prompt far longer than the messages.
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "units": {"type": "string", "enum": ["metric", "imperial"]}},
                "required": ["city"],
            },
        },
    }
    for name, description in [
        ("current_weather", "The weather now in a city."),
        ("forecast", "The next five days' weather in a city."),
        ("air_quality", "The air quality index in a city, with its main pollutant."),
    ]
]


def request_for(index):
    """(path, body) of request ``index`` of the mix, which every user gets whole (the kind follows
    the user's own request count). One in five is embeddings and one in five a Responses call
    (every other one streamed); the rest are chat completions over every chat model in turn, a
    stream every 10th, tools every 3rd and no max_tokens (upstream's default length) every 4th,
    in every combination."""
    nth = index // USERS
    if nth % 5 == 1:
        return "embeddings", {"model": EMBEDDERS[nth % len(EMBEDDERS)], "input": [f"request {index}", "more"]}
    if nth % 5 == 2:
        body = {"model": CHATTERS[nth % len(CHATTERS)], "input": f"request {index}", "stream": nth % 2 == 0}
        if nth % 3 == 0:
            body["tools"] = [{"type": "function", **tool["function"]} for tool in TOOLS]
        return "responses", body
    body = {
        "model": CHATTERS[nth % len(CHATTERS)],
        "messages": [{"role": "user", "content": f"request {index}"}],
        "stream": nth % 10 == 0,
    }
    if nth % 3 == 0:
        body["tools"] = TOOLS
    if nth % 4:
        body["max_tokens"] = 8
    return "chat/completions", body


def test_ten_thousand_requests_leave_every_ledger_exact_and_equal_to_upstream_cost(gateway, sql):
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
        path, body = request_for(index)
        response = session.post(
            f"{server.url}/v1/{path}",
            json=body,
            headers={"Authorization": f"Bearer {key}"},
            timeout=60,
        )
        response.content  # noqa: B018 - read the whole (possibly streamed) body
        return response.status_code

    with ThreadPoolExecutor(CONCURRENCY) as pool:
        statuses.update(pool.map(send, range(TOTAL_REQUESTS)))
    assert statuses == Counter({200: TOTAL_REQUESTS}), statuses
    user_ids = [user_id for user_id, _ in keys]
    books = sql(
        "SELECT u.id, u.credits, u.reserved_credits,"
        " (SELECT coalesce(sum(cost), 0) FROM usage_records WHERE user_id = u.id) AS usage_cost,"
        " (SELECT count(*) FROM usage_records WHERE user_id = u.id) AS usage_rows,"
        " (SELECT coalesce(-sum(amount), 0) FROM credit_transactions"
        "   WHERE user_id = u.id AND kind = 'usage') AS ledger_debits"
        " FROM users u WHERE u.id = ANY(%s)",
        (user_ids,),
    )
    assert len(books) == USERS
    endpoints = sql("SELECT endpoint, count(*) AS n FROM usage_records GROUP BY endpoint ORDER BY endpoint")
    assert {row["endpoint"]: row["n"] for row in endpoints} == {
        "chat": TOTAL_REQUESTS * 3 // 5,
        "embeddings": TOTAL_REQUESTS // 5,
        "responses": TOTAL_REQUESTS // 5,
    }
    for user in books:
        assert user["usage_rows"] == TOTAL_REQUESTS // USERS
        assert OPENING - user["credits"] == user["usage_cost"] == user["ledger_debits"] > 0
        assert user["reserved_credits"] == 0
    reconciliation = sql(
        "SELECT user_id, sum(cost) AS cost, sum(upstream_cost) AS upstream_cost,"
        " count(*) FILTER (WHERE upstream_cost IS NULL) AS unreported"
        " FROM usage_records WHERE user_id = ANY(%s) AND status = 'success' GROUP BY user_id",
        (user_ids,),
    )
    assert len(reconciliation) == USERS
    for user in reconciliation:
        assert user["unreported"] == 0, user
        assert user["upstream_cost"] == user["cost"], user
