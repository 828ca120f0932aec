"""/health, /health/live and /health/ready against real Postgres and Redis."""

from datetime import datetime

from tests.helpers import ADMIN


def test_health_reports_connected_dependencies(client, sql):
    sql("INSERT INTO users (email, plan) VALUES ('a@example.com', 'trial'), ('b@example.com', 'trial')")
    response = client.get("/health")
    body = response.get_json()
    assert response.status_code == 200
    assert body["database"] == "connected"
    assert body["redis"] == "connected"
    assert body["user_count"] == 2
    assert datetime.fromisoformat(body["timestamp"]).utcoffset().total_seconds() == 0
    assert body["version"] and body["uptime_seconds"] >= 0


def test_health_is_healthy_once_models_were_fetched(client, sql):
    sql("UPDATE model_catalog SET fetched_at = now(), last_attempt_at = now(), models = '[]'")
    body = client.get("/health").get_json()
    assert body["status"] == "healthy"
    assert body["openrouter"] == "connected"
    assert body["reasons"] == []


def test_failed_model_fetch_marks_openrouter_error_and_degraded(client, sql):
    sql(
        "UPDATE model_catalog SET fetched_at = now() - interval '1 hour',"
        " last_attempt_at = now(), last_error_at = now(), last_error = 'boom'"
    )
    response = client.get("/health")
    assert response.status_code == 200
    assert response.get_json()["openrouter"] == "error"
    assert response.get_json()["status"] == "degraded"


def test_openrouter_unconfigured_without_key_is_degraded_with_the_reason(make_app):
    app = make_app(OPENROUTER_API_KEY=None, OPENROUTER_BASE_URL="https://openrouter.ai/api/v1")
    response = app.test_client().get("/health")
    body = response.get_json()
    assert response.status_code == 200
    assert body["openrouter"] == "unconfigured"
    assert body["status"] == "degraded"
    assert any("OPENROUTER_API_KEY" in reason for reason in body["reasons"])


def test_without_upstream_key_the_model_refresh_job_is_skipped_not_failed(make_app):
    app = make_app(OPENROUTER_API_KEY=None, OPENROUTER_BASE_URL="https://openrouter.ai/api/v1")
    run = app.test_client().post("/admin/jobs/refresh_model_cache/run", headers=ADMIN).get_json()
    assert (run["status"], run["details"]["reason"], run["error"]) == ("skipped", "OPENROUTER_API_KEY is not set", None)


def test_redis_down_is_degraded_not_unhealthy(make_app):
    app = make_app(REDIS_URL="redis://127.0.0.1:1/0")
    response = app.test_client().get("/health")
    assert response.status_code == 200
    assert response.get_json()["redis"] == "disconnected"
    assert response.get_json()["status"] == "degraded"


def test_unreachable_database_is_unhealthy_503(make_app):
    app = make_app(DATABASE_URL="postgresql://nobody@127.0.0.1:1/none", RUN_MIGRATIONS_ON_START=False)
    client = app.test_client()
    response = client.get("/health")
    assert response.status_code == 503
    assert response.get_json()["status"] == "unhealthy"
    assert response.get_json()["database"] == "disconnected"
    assert client.get("/health/live").status_code == 200
    ready = client.get("/health/ready")
    assert ready.status_code == 503
    assert ready.get_json()["status"] == "not_ready"


def test_ready_once_migrated(client):
    response = client.get("/health/ready")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ready", "reason": "ready"}


def test_ready_503_while_a_migration_is_pending(client, sql):
    sql("DELETE FROM schema_migrations WHERE name = '0003_operations.sql'")
    response = client.get("/health/ready")
    assert response.status_code == 503
    assert "0003_operations.sql" in response.get_json()["reason"]
