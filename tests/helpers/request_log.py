"""Traffic for the request log's tests: completions sent with a chosen X-Request-ID, tags and
client address, and one mix of them (two users, a second key, an org key, a free model, an
upstream failure) that the API's and the dashboard's tests both filter."""

from tests.helpers import bearer, create_key, create_user
from tests.helpers.orgs import create_org, member_with_key
from tests.helpers.upstream import UPSTREAM


def send(client, key, request_id, model="openai/gpt-4o-mini", tags="", ip="203.0.113.9"):
    """One chat completion through /v1 with this X-Request-ID, tags and client address."""
    headers = {**bearer(key), "X-Request-ID": request_id, "X-Gateway-Tags": tags}
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
    return client.post("/v1/chat/completions", json=body, headers=headers, environ_base={"REMOTE_ADDR": ip})


def make_traffic(client, upstream):
    """Requests a-1..a-3 (alice; a-2 from her second key and another IP, a-3 a free model), b-1 and
    b-2 (bob; b-2 failed upstream) and c-1 (carol's org key); the people, keys and org by name."""
    alice, alice_key = create_user(client, credits="1.00", plan="team")
    bob, bob_key = create_user(client, credits="1.00", plan="team")
    extra, extra_key = create_key(client, alice_key, name="second")
    org = create_org(client, credits="1.00")
    carol, _, carol_org_key = member_with_key(client, org["id"])
    assert send(client, alice_key, "a-1", tags="team-a").status_code == 200
    assert send(client, extra_key, "a-2", ip="198.51.100.4").status_code == 200
    assert send(client, alice_key, "a-3", model="test/free-model").status_code == 200
    assert send(client, bob_key, "b-1", tags="team-b").status_code == 200
    assert send(client, carol_org_key, "c-1").status_code == 200
    upstream.post(f"{UPSTREAM}/chat/completions", status_code=500, json={"error": {"code": 500, "message": "boom"}})
    assert send(client, bob_key, "b-2").status_code >= 500
    return {
        "alice": alice,
        "bob": bob,
        "carol": carol,
        "extra": extra,
        "org": org,
        "alice_key": alice_key,
        "bob_key": bob_key,
    }
