"""refresh_model_cache, cache_cleanup and release_stale_holds against real Postgres and Redis."""

from ops_gateway.maintenance import cache_cleanup
from ops_gateway.upstream import catalog as model_catalog
from tests.helpers import ADMIN

MODELS_URL = "http://openrouter.test/api/v1/models"
EMBEDDING_MODELS_URL = "http://openrouter.test/api/v1/embeddings/models"
MODELS = {"data": [{"id": "m/a", "pricing": {"prompt": "0.000001", "completion": "0.000002"}}, {"id": "m/b"}]}


def run(client, name):
    response = client.post(f"/admin/jobs/{name}/run", headers=ADMIN)
    assert response.status_code == 200
    return response.get_json()


def test_model_cache_refresh_fills_the_shared_catalogue(client, sql, requests_mock):
    requests_mock.get(MODELS_URL, json=MODELS)
    requests_mock.get(EMBEDDING_MODELS_URL, json={"data": []})
    result = run(client, "refresh_model_cache")
    assert result["status"] == "success" and result["details"]["total_models"] == 2
    catalog = sql("SELECT jsonb_array_length(models) AS n, fetched_at, refresh_count FROM model_catalog")[0]
    assert catalog["n"] == 2 and catalog["fetched_at"] and catalog["refresh_count"] == 1


def test_upstream_failure_is_a_failed_run_and_keeps_the_old_list(client, sql, requests_mock):
    sql("UPDATE model_catalog SET models = '[{\"id\": \"old\"}]', fetched_at = now() - interval '1 hour'")
    requests_mock.get(MODELS_URL, status_code=503)
    requests_mock.get(EMBEDDING_MODELS_URL, status_code=503)
    result = run(client, "refresh_model_cache")
    assert result["status"] == "failed" and result["error"].startswith("UpstreamError")
    assert sql("SELECT models FROM model_catalog")[0]["models"] == [{"id": "old"}]


def test_cleanup_deletes_leaked_keys_and_keeps_live_and_persistent_ones(app, redis_client):
    redis_client.set("gw:leaked", 1)
    redis_client.set("LIMITS:LIMITER/leaked", 1)
    redis_client.set("gw:ipblock:10.0.0.1", 1, ex=600)
    redis_client.hincrby(model_catalog.COUNTER_KEY, "hits", 3)
    redis_client.set("other:app:key", 1)  # not ours: never touched
    report = cache_cleanup.sweep_prefix(redis_client, "gw:", min_idle_seconds=0)
    assert report == {"scanned": 3, "with_ttl": 1, "leaked_deleted": 1, "no_ttl_kept": 1}
    assert cache_cleanup.sweep_prefix(redis_client, "LIMITS:", min_idle_seconds=0)["leaked_deleted"] == 1
    assert sorted(redis_client.keys("*")) == ["gw:ipblock:10.0.0.1", model_catalog.COUNTER_KEY, "other:app:key"]


def test_cleanup_job_keeps_recently_touched_keys_and_reports_the_catalogue_age(client, sql, redis_client):
    redis_client.set("gw:just-written", 1)  # its EXPIRE may be on its way: too young to call leaked
    redis_client.set("gw:counter", 1, ex=60)
    sql("UPDATE model_catalog SET models = '[{\"id\": \"m\"}]', fetched_at = now() - interval '10 minutes'")
    result = run(client, "cache_cleanup")
    assert result["status"] == "success"
    details = result["details"]
    assert details["redis"]["gw:"] == {"scanned": 2, "with_ttl": 1, "leaked_deleted": 0, "no_ttl_kept": 1}
    limiter = details["redis"]["LIMITS:"]  # this very request's admin rate-limit window
    assert limiter["scanned"] >= 1 and limiter["with_ttl"] == limiter["scanned"] and limiter["leaked_deleted"] == 0
    assert 590 < details["model_catalog_age_seconds"] < 700
    assert details["model_catalog_stale"] is True and details["model_catalog_models"] == 1
    assert redis_client.exists("gw:just-written")


def test_stale_credit_holds_are_released(client, sql):
    sql(
        "INSERT INTO users (email, plan, credits, reserved_credits, reserved_at) VALUES"
        " ('stale@example.com', 'trial', 5, 1, now() - interval '2 hours'),"
        " ('busy@example.com', 'trial', 5, 1, now())"
    )
    sql(
        "INSERT INTO credit_holds (user_id, request_id, amount, expires_at)"
        " SELECT id, 'r-' || email, 1, CASE WHEN email LIKE 'stale%' THEN now() - interval '1 second'"
        " ELSE now() + interval '1 hour' END FROM users"
    )
    result = run(client, "release_stale_holds")
    assert result["status"] == "success"
    assert result["details"]["holds_released"] == 1 and result["details"]["users_released"] == 1
    held = sql("SELECT email, reserved_credits FROM users ORDER BY email")
    assert [(r["email"], r["reserved_credits"]) for r in held] == [("busy@example.com", 1), ("stale@example.com", 0)]
