"""An org key's money after the request: a cut stream reconciled with upstream's bill moves the
org's balance and its member's org budget, never the member's own; a hold the scheduler frees
goes back to the org and the budgets it counted against; suspending the org or leaving it cuts
an org key's stream in flight."""

import json
from decimal import Decimal

from ops_gateway.accounts.key_watch import OPEN_STREAMS
from tests.helpers import ADMIN, bearer
from tests.helpers.billing import cut_after
from tests.helpers.jobs import run_reconciliation
from tests.helpers.orgs import create_org, member_with_key, org_books
from tests.helpers.upstream import SSE, UPSTREAM, chat, chunk, sse

STREAM = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "stream": True}


def member_figures(sql, org_id, user_id):
    [row] = sql(
        "SELECT budget_spent, budget_reserved FROM org_members WHERE org_id = %s AND user_id = %s", (org_id, user_id)
    )
    return row


def test_a_cut_org_stream_is_reconciled_to_the_org_and_its_members_budget(client, upstream, sql):
    org = create_org(client, credits="1.00", budget="0.5")
    user, _, okey = member_with_key(client, org["id"], budget="0.25")
    events = sse(*[chunk(f"w{i}") for i in range(40)], chunk(usage={"prompt_tokens": 9, "cost": 0.2}), "[DONE]")
    upstream.post(f"{UPSTREAM}/chat/completions", text=events, headers=SSE)
    response = client.post(
        "/v1/chat/completions", json={**STREAM, "max_tokens": 50}, headers=bearer(okey), buffered=False
    )
    cut_after(response, 5)
    provisional = org_books(sql, org["id"])["usage"]
    assert provisional > 0 and member_figures(sql, org["id"], user["id"])["budget_spent"] == provisional

    billed = {"id": "gen-1", "total_cost": 0.0115, "native_tokens_prompt": 9, "native_tokens_completion": 5}
    upstream.get(f"{UPSTREAM}/generation?id=gen-1", json={"data": {**billed, "model": "openai/gpt-4o-mini"}})
    assert run_reconciliation(client)["reconciled"] == 1

    books = org_books(sql, org["id"])
    assert books["usage"] == books["budget_spent"] == Decimal("0.0115")
    assert (
        books["credits"] == Decimal("1.00") - Decimal("0.0115") == Decimal("1.00") + books["ledger"] - Decimal("1.00")
    )
    assert member_figures(sql, org["id"], user["id"]) == {"budget_spent": Decimal("0.0115"), "budget_reserved": 0}
    [personal] = sql("SELECT credits FROM users WHERE id = %s", (user["id"],))
    assert personal["credits"] == Decimal("5.00")
    [daily] = sql("SELECT org_id, cost FROM usage_daily_totals WHERE user_id = %s", (user["id"],))
    assert daily == {"org_id": org["id"], "cost": Decimal("0.0115")}


def test_an_expired_org_hold_goes_back_to_the_org_and_its_budgets(client, upstream, sql):
    org = create_org(client, credits="1.00", budget="0.5")
    user, _, okey = member_with_key(client, org["id"], budget="0.25")
    events = sse(chunk("a"), chunk("b"), chunk(usage={"prompt_tokens": 1, "completion_tokens": 1}), "[DONE]")
    upstream.post(f"{UPSTREAM}/chat/completions", text=events, headers=SSE)
    response = client.post(
        "/v1/chat/completions", json={**STREAM, "max_tokens": 50}, headers=bearer(okey), buffered=False
    )
    chunks = iter(response.response)
    next(chunks)
    [hold] = sql("SELECT org_id, amount, org_budgeted, member_budgeted, user_budgeted FROM credit_holds")
    assert (hold["org_id"], hold["org_budgeted"], hold["member_budgeted"], hold["user_budgeted"]) == (
        org["id"], True, True, False
    )  # fmt: skip
    held = org_books(sql, org["id"])
    assert held["reserved_credits"] == held["budget_reserved"] == hold["amount"]
    assert member_figures(sql, org["id"], user["id"])["budget_reserved"] == hold["amount"]
    sql("UPDATE credit_holds SET expires_at = now() - interval '1 second'")
    job = client.post("/admin/jobs/release_stale_holds/run", headers=ADMIN).get_json()
    assert job["details"]["holds_released"] == 1
    released = org_books(sql, org["id"])
    assert released["reserved_credits"] == released["budget_reserved"] == 0
    assert member_figures(sql, org["id"], user["id"])["budget_reserved"] == 0
    b"".join(chunks)  # the request still settles its cost, without giving its hold back twice
    response.close()
    settled = org_books(sql, org["id"])
    assert settled["reserved_credits"] == settled["budget_reserved"] == 0 and settled["usage"] > 0
    assert settled["credits"] == Decimal("1.00") - settled["usage"] and settled["budget_spent"] == settled["usage"]


def test_an_org_keys_stream_is_cut_when_the_org_is_suspended_or_the_member_leaves(client, upstream, sql, monkeypatch):
    monkeypatch.setattr(OPEN_STREAMS, "check_seconds", 0)  # check open streams' keys on every chunk
    org = create_org(client, credits="1.00")
    events = sse(*[chunk(f"w{i}") for i in range(5)], chunk(usage={"prompt_tokens": 5, "completion_tokens": 3}))
    upstream.post(f"{UPSTREAM}/chat/completions", text=events + "data: [DONE]\n\n", headers=SSE)
    for ending in ("suspend", "leave"):
        user, _, okey = member_with_key(client, org["id"])
        response = client.post("/v1/chat/completions", json=STREAM, headers=bearer(okey), buffered=False)
        chunks = iter(response.response)
        next(chunks)
        if ending == "suspend":
            client.patch(f"/admin/orgs/{org['id']}", json={"status": "suspended"}, headers=ADMIN)
        else:
            client.delete(f"/admin/orgs/{org['id']}/members/{user['id']}", headers=ADMIN)
        rest = b"".join(chunks).decode()
        response.close()
        last = [line.removeprefix("data: ") for line in rest.split("\n\n") if line.startswith("data: ")][-1]
        assert json.loads(last)["error"]["code"] == "api_key_revoked" and "[DONE]" not in rest, ending
        client.patch(f"/admin/orgs/{org['id']}", json={"status": "active"}, headers=ADMIN)
    books = org_books(sql, org["id"])
    assert books["reserved_credits"] == 0 and books["credits"] == Decimal("1.00") - books["usage"] > 0


def test_org_and_member_budget_thresholds_are_announced_once(client, upstream, sql):
    org = create_org(client, credits="1.00", budget="0.00005", budget_alert_thresholds=[0.2])
    _, _, okey = member_with_key(client, org["id"], budget="0.00005", budget_alert_thresholds=[0.2])
    for _ in range(2):
        assert chat(client, okey, max_tokens=10).status_code == 200
    rules = sorted(row["rule"].split(":")[1] for row in sql("SELECT rule FROM alerts WHERE rule LIKE 'budget:%'"))
    assert rules == ["member", "org"]
    events = sql("SELECT details FROM api_key_audit_logs WHERE action = 'budget_threshold' ORDER BY id")
    assert sorted(event["details"]["scope"] for event in events) == ["member", "org"]
