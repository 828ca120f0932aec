"""After heavy concurrent load over every metered endpoint (chat, embeddings, responses), every
user's and every org's books balance exactly and equal what upstream billed times the markup:
with upstream costs three times the catalogue's, streams cut by upstream and by clients, requests
without max_tokens on a model that answers long, big embedding batches and the auto router. Half
the users call with an org key (two orgs): their org pays, their own credits stay whole, and an
org's spend is the sum of its members' org usage."""

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
import requests

from devtools.fake_openrouter import MODELS
from tests.e2e.gateway_calls import ADMIN

pytestmark = pytest.mark.slow  # 10,000 requests

EMBEDDERS = [m["id"] for m in MODELS if "embeddings" in m["architecture"]["output_modalities"]]
CHATTERS = [m["id"] for m in MODELS if m["id"] not in EMBEDDERS]

TOTAL_REQUESTS = 10_000
CONCURRENCY = 64
USERS = 20
OPENING = Decimal("100.00")
ORGS = 2  # every odd-numbered user calls with a key of org (index // 2) % ORGS
ORG_OPENING = Decimal("500.00")
MARKUP = Decimal("1.25")
# Upstream bills three times the catalogue (a dearer provider), answers 2,000 tokens when no limit
# is sent, and, for the first half of the run, cuts every stream after two chunks.
UPSTREAM_SWITCHES = {"cost_multiplier": 3, "long_answer_tokens": 2000}
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
    the user's own request count). One in five is embeddings, one in five a Responses call and one
    in five an Anthropic Messages call (every other one streamed); the rest are chat completions
    over every chat model in turn, a stream every 10th, tools every 3rd and no max_tokens
    (upstream's default length) every 4th, in every combination; every 6th stream is cut by its
    client after the first bytes. The chat models include ``openrouter/auto``."""
    nth = index // USERS
    if nth % 5 == 1:
        inputs = [f"request {index} part {part}" for part in range(256 if nth % 3 == 0 else 2)]
        return "embeddings", {"model": EMBEDDERS[nth % len(EMBEDDERS)], "input": inputs}
    if nth % 5 == 2:
        body = {"model": CHATTERS[nth % len(CHATTERS)], "input": f"request {index}", "stream": nth % 2 == 0}
        if nth % 3 == 0:
            body["tools"] = [{"type": "function", **tool["function"]} for tool in TOOLS]
        return "responses", body
    if nth % 5 == 3:
        body = {
            "model": CHATTERS[nth % len(CHATTERS)],
            "max_tokens": 8 if nth % 4 else 4096,
            "messages": [{"role": "user", "content": f"request {index}"}],
            "stream": nth % 2 == 0,
        }
        if nth % 3 == 0:
            body["tools"] = [{"name": tool["function"]["name"], "input_schema": {"type": "object"}} for tool in TOOLS]
        return "messages", body
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


def create_org(url, index):
    """An org with its opening credits and a spend cap far above the run's (so it is tracked)."""
    body = {"name": f"load org {index}", "plan": "enterprise", "credits": str(ORG_OPENING), "budget": "100000"}
    body["budget_period"] = "never"
    return requests.post(f"{url}/admin/orgs", json=body, headers=ADMIN, timeout=10).json()["id"]


def org_member_key(url, org_id, user_id, key):
    """Make the user a member with an org budget of their own and return a new key of the org."""
    member = {"user_id": user_id, "role": "member", "budget": "10000", "budget_period": "never"}
    requests.post(f"{url}/admin/orgs/{org_id}/members", json=member, headers=ADMIN, timeout=10).raise_for_status()
    body = {"name": "org", "org_id": org_id}
    created = requests.post(f"{url}/user/api-keys", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=10)
    return created.json()["api_key"]


def check_org_books(sql, org_ids):
    """Each org's spend = its ledger's debits = its members' org usage = their org budgets' spend =
    upstream's bill times the markup; nothing left held."""
    orgs = sql(
        "SELECT o.id, o.credits, o.reserved_credits, o.budget_spent, o.budget_reserved,"
        " (SELECT coalesce(sum(amount), 0) FROM credit_holds WHERE org_id = o.id) AS open_holds,"
        " (SELECT coalesce(sum(cost), 0) FROM usage_records WHERE org_id = o.id) AS usage_cost,"
        " (SELECT coalesce(sum(round(upstream_cost * %s, 10)), 0) FROM usage_records WHERE org_id = o.id)"
        "   AS upstream_billed,"
        " (SELECT coalesce(-sum(amount), 0) FROM credit_transactions"
        "   WHERE org_id = o.id AND kind IN ('usage', 'usage_reconciled')) AS ledger_debits,"
        " (SELECT coalesce(sum(budget_spent), 0) FROM org_members WHERE org_id = o.id) AS members_spent,"
        " (SELECT coalesce(sum(budget_reserved), 0) FROM org_members WHERE org_id = o.id) AS members_reserved"
        " FROM organizations o WHERE o.id = ANY(%s)",
        (MARKUP, org_ids),
    )
    assert len(orgs) == ORGS
    for org in orgs:
        spent = ORG_OPENING - org["credits"]
        assert spent == org["usage_cost"] == org["ledger_debits"] == org["upstream_billed"] > 0, org
        assert spent == org["budget_spent"] == org["members_spent"], org
        assert org["reserved_credits"] == org["open_holds"] == org["budget_reserved"] == org["members_reserved"] == 0


def test_ten_thousand_requests_leave_every_ledger_exact_and_equal_to_upstream_cost(gateway, upstream, sql):
    server = gateway(workers=4, BILLING_MARKUP=str(MARKUP))
    control = f"{upstream.url}/_control"
    requests.post(control, json={**UPSTREAM_SWITCHES, "cut_stream_after": 2}, timeout=5).raise_for_status()
    keys = []
    org_ids = [create_org(server.url, index) for index in range(ORGS)]
    for index in range(USERS):
        body = {"email": f"load{index}@example.com", "credits": str(OPENING), "plan": "enterprise"}
        created = requests.post(f"{server.url}/admin/users", json=body, headers=ADMIN, timeout=10).json()
        user_id, key = created["user"]["id"], created["api_key"]
        if index % 2:
            key = org_member_key(server.url, org_ids[(index // 2) % ORGS], user_id, key)
        keys.append((user_id, key))
    local = threading.local()
    statuses = Counter()

    def send(index):
        session = getattr(local, "session", None) or requests.Session()
        local.session = session
        _, key = keys[index % USERS]
        path, body = request_for(index)
        hang_up = body.get("stream") and (index // USERS) % 6 == 0
        response = session.post(
            f"{server.url}/v1/{path}",
            json=body,
            headers={"Authorization": f"Bearer {key}"},
            timeout=60,
            stream=hang_up,
        )
        if hang_up:
            next(response.iter_content(64), None)
            response.close()
        else:
            response.content  # noqa: B018 - read the whole (possibly streamed) body
        return response.status_code

    half = TOTAL_REQUESTS // 2
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        statuses.update(pool.map(send, range(half)))
        requests.post(control, json={"cut_stream_after": None}, timeout=5).raise_for_status()
        statuses.update(pool.map(send, range(half, TOTAL_REQUESTS)))
    assert statuses == Counter({200: TOTAL_REQUESTS}), statuses
    cut = sql("SELECT count(*) AS n FROM usage_records WHERE status = 'incomplete'")[0]["n"]
    assert cut >= 500, cut  # upstream's cuts, at least
    for _ in range(20):  # every cut stream reconciled from its generation lookup
        run = requests.post(f"{server.url}/admin/jobs/reconcile_generations/run", headers=ADMIN, timeout=120)
        if run.json()["details"]["pending"] == 0:
            break
    assert sql("SELECT count(*) AS n FROM generation_lookups") == [{"n": 0}]

    user_ids = [user_id for user_id, _ in keys]
    check_org_books(sql, org_ids)
    books = sql(
        "SELECT u.id, u.credits, u.reserved_credits,"
        " (SELECT coalesce(sum(amount), 0) FROM credit_holds WHERE user_id = u.id) AS open_holds,"
        " (SELECT coalesce(sum(cost), 0) FROM usage_records WHERE user_id = u.id) AS usage_cost,"
        " (SELECT coalesce(sum(round(upstream_cost * %s, 10)), 0) FROM usage_records WHERE user_id = u.id)"
        "   AS upstream_billed,"
        " (SELECT count(*) FROM usage_records WHERE user_id = u.id) AS usage_rows,"
        " (SELECT count(DISTINCT settlement_id) FROM usage_records WHERE user_id = u.id) AS settlements,"
        " (SELECT coalesce(-sum(amount), 0) FROM credit_transactions"
        "   WHERE user_id = u.id AND org_id IS NULL AND kind IN ('usage', 'usage_reconciled')) AS ledger_debits,"
        " (SELECT count(*) FROM usage_records WHERE user_id = u.id AND org_id IS NOT NULL) AS org_rows"
        " FROM users u WHERE u.id = ANY(%s) ORDER BY u.id",
        (MARKUP, user_ids),
    )
    assert len(books) == USERS
    endpoints = sql("SELECT endpoint, count(*) AS n FROM usage_records GROUP BY endpoint ORDER BY endpoint")
    assert {row["endpoint"]: row["n"] for row in endpoints} == {
        "chat": TOTAL_REQUESTS * 2 // 5,
        "embeddings": TOTAL_REQUESTS // 5,
        "responses": TOTAL_REQUESTS // 5,
        "messages": TOTAL_REQUESTS // 5,
    }
    for index, user in enumerate(books):
        assert user["usage_rows"] == user["settlements"] == TOTAL_REQUESTS // USERS  # none settled twice
        spent = OPENING - user["credits"]
        if index % 2:  # an org key's user: the org paid, their own credits are whole
            assert spent == user["ledger_debits"] == 0 and user["org_rows"] == user["usage_rows"], user
            assert user["usage_cost"] == user["upstream_billed"] > 0, user
        else:
            assert spent == user["usage_cost"] == user["ledger_debits"] == user["upstream_billed"] > 0, user
        assert user["reserved_credits"] == user["open_holds"] == 0
    unbilled = sql(
        "SELECT count(*) FILTER (WHERE upstream_cost IS NULL) AS unreported,"
        " count(*) FILTER (WHERE cost <> round(upstream_cost * %s, 10)) AS off_the_bill"
        " FROM usage_records WHERE user_id = ANY(%s)",
        (MARKUP, user_ids),
    )
    assert unbilled == [{"unreported": 0, "off_the_bill": 0}]
    routed = sql("SELECT count(*) AS n FROM usage_records WHERE model = 'openrouter/auto' AND served_model IS NOT NULL")
    assert routed[0]["n"] > 0  # billed as the model the router picked
