"""Two gateway instances on a real 3-node Redis Cluster (Debian's redis-server): limits as exact as
on one Redis, IP blocks, and a /health that tells a cluster node behind the single-node client."""

from concurrent.futures import ThreadPoolExecutor

import requests

from tests.e2e.gateway_calls import MODEL, create_user, limit_per_minute_in_a_fresh_window


def test_two_instances_on_a_redis_cluster_enforce_limits_exactly_and_block_bad_keys(gateway, redis_cluster):
    # Each instance names a different node: the client finds the others (REDIS_CLUSTER=true).
    instances = [
        gateway(workers=2, REDIS_URL=f"redis://127.0.0.1:{port}/0", REDIS_CLUSTER="true")
        for port in redis_cluster.ports[:2]
    ]
    for server in instances:
        assert requests.get(f"{server.url}/health", timeout=10).json()["redis"] == "connected"
        assert requests.get(f"{server.url}/health/ready", timeout=10).status_code == 200
    user_id, headers, _ = create_user(instances[0].url, "10.00", plan="enterprise")
    limit_per_minute_in_a_fresh_window(instances[0].url, user_id, 30)
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}

    def send(i):
        url = f"{instances[i % 2].url}/v1/chat/completions"
        return requests.post(url, json=body, headers=headers, timeout=60).status_code

    with ThreadPoolExecutor(80) as pool:
        statuses = sorted(pool.map(send, range(120)))
    assert statuses.count(200) == 30 and statuses.count(429) == 90, statuses

    bad = {"Authorization": "Bearer gw_live_not_a_real_key_0123456789abcdef"}
    answers = [
        requests.get(f"{instances[i % 2].url}/v1/models", headers=bad, timeout=10).status_code for i in range(21)
    ]
    assert answers[:20] == [401] * 20 and answers[20] == 429
    blocked = requests.get(f"{instances[1].url}/v1/models", headers=headers, timeout=10)
    assert blocked.status_code == 429 and blocked.json()["error"]["code"] == "ip_blocked"


def test_health_reports_redis_failing_for_a_cluster_node_behind_the_single_node_client(make_app, redis_cluster):
    app = make_app(REDIS_URL=f"redis://127.0.0.1:{redis_cluster.ports[0]}/0")
    client = app.test_client()
    assert client.get("/health").get_json()["redis"] == "failing"
    assert client.get("/health/ready").status_code == 503
