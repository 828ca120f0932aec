"""The operator dashboard over the test client: sign-in rules, session checks, CSRF, actions, status page."""

import csv
import io

import pytest

from tests.conftest import ADMIN_API_KEY
from tests.helpers import ADMIN, bearer, create_user
from tests.helpers.dashboard import csrf_of, sign_in


def audit_rows(sql, action):
    return sql("SELECT actor, user_id, details FROM api_key_audit_logs WHERE action = %s ORDER BY id", (action,))


def test_sign_in_cookie_is_httponly_strict_and_scoped_to_the_dashboard(client):
    response = sign_in(client)
    assert response.status_code == 302 and response.headers["Location"].endswith("/dashboard/")
    cookie = response.headers["Set-Cookie"]
    assert "gw_dashboard=" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert "Path=/dashboard" in cookie and "Secure" not in cookie
    assert ADMIN_API_KEY not in cookie


def test_cookie_is_secure_behind_an_https_proxy(client):
    token = csrf_of(client)
    response = client.post(
        "/dashboard/login",
        data={"api_key": ADMIN_API_KEY, "csrf_token": token},
        headers={"X-Forwarded-Proto": "https"},
    )
    assert "Secure" in response.headers["Set-Cookie"]


def test_overview_shows_components_charts_and_security_headers(client):
    sign_in(client)
    response = client.get("/dashboard/")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    for component in ("database", "redis", "openrouter", "scheduler"):
        assert f'id="component-{component}"' in page
    assert page.count('<svg class="chart"') == 4
    assert "script-src" not in response.headers["Content-Security-Policy"]  # default-src 'none' covers scripts
    assert response.headers["X-Frame-Options"] == "DENY" and response.headers["Cache-Control"] == "no-store"


def test_p95_card_shows_the_latency_of_the_first_minutes_of_traffic(client, sql):
    sql(
        "INSERT INTO usage_records (request_id, user_id, model, status, latency_ms)"
        " SELECT 'r' || i, 1, 'm', 'success', i * 100 FROM generate_series(1, 4) AS i"
    )
    sign_in(client)
    page = client.get("/dashboard/").get_data(as_text=True)
    assert '<div class="label">p95 latency</div><div class="value">385 ms</div>' in page


def test_a_user_without_spend_caps_gets_the_padded_empty_state(client):
    user, _ = create_user(client)
    sign_in(client)
    page = client.get(f"/dashboard/users/{user['id']}").get_data(as_text=True)
    budgets = page[page.index('id="user-budgets"') :]
    assert budgets.index('<div class="empty">No spend caps') < budgets.index("</section>")


def test_pages_need_a_signed_in_admin(client):
    response = client.get("/dashboard/users")
    assert response.status_code == 302 and "/dashboard/login" in response.headers["Location"]


def test_wrong_key_is_refused_and_audited_without_the_key(client, sql):
    bogus = "gw_live_" + "x" * 43
    response = sign_in(client, bogus)
    assert response.status_code == 401 and "not accepted" in response.get_data(as_text=True)
    (row,) = audit_rows(sql, "auth_failure")
    assert row["details"]["reason"] == "unknown_key" and row["details"]["path"] == "/dashboard/login"
    assert bogus not in str(row) and row["details"]["key_prefix"] == bogus[:11]
    assert client.get("/dashboard/").status_code == 302


def test_non_admin_key_is_refused(client, sql):
    _, key = create_user(client)
    response = sign_in(client, key)
    assert response.status_code == 403 and "does not belong to an admin" in response.get_data(as_text=True)
    assert audit_rows(sql, "auth_failure")[-1]["details"]["reason"] == "not_admin"


def test_repeated_failures_block_the_ip(make_app, sql):
    client = make_app(AUTH_FAILURE_LIMIT="3 per minute").test_client()
    assert [sign_in(client, "wrong").status_code for _ in range(3)] == [401] * 3  # the third trips the block
    response = client.post("/dashboard/login", data={"api_key": ADMIN_API_KEY})
    assert response.status_code == 429  # even the right key, once blocked
    assert client.get("/dashboard/login").status_code == 429
    assert sql("SELECT type FROM security_events") == [{"type": "ip_blocked"}]


def test_post_without_the_csrf_token_is_rejected(client):
    sign_in(client)
    response = client.post("/dashboard/models/refresh", data={})
    assert response.status_code == 400 and "did not come from this dashboard" in response.get_data(as_text=True)


def test_admin_user_session_ends_when_demoted(client):
    admin, key = create_user(client, role="admin")
    assert sign_in(client, key).status_code == 302
    assert client.get("/dashboard/").status_code == 200
    client.patch(f"/admin/users/{admin['id']}", json={"role": "user"}, headers=ADMIN)
    assert client.get("/dashboard/").status_code == 302


def test_revoking_the_sign_in_key_ends_the_session(client):
    admin, key = create_user(client, role="admin")
    sign_in(client, key)
    key_id = client.get("/user/api-keys", headers=bearer(key)).get_json()["keys"][0]["id"]
    client.delete(f"/user/api-keys/{key_id}?force=true", headers=bearer(key))
    assert client.get("/dashboard/").status_code == 302


def test_rotating_the_bootstrap_key_signs_its_sessions_out(app, client):
    sign_in(client)
    assert client.get("/dashboard/").status_code == 200
    app.config["ADMIN_API_KEY"] = "gw_admin_rotated_key_0123456789abcdefghij"
    assert client.get("/dashboard/").status_code == 302


def test_sign_out_also_kills_a_copied_cookie(app, client):
    sign_in(client)
    stolen = client.get_cookie("gw_dashboard", path="/dashboard").value
    client.post("/dashboard/logout", data={"csrf_token": csrf_of(client, "/dashboard/")})
    thief = app.test_client()
    thief.set_cookie("gw_dashboard", stolen, path="/dashboard")
    assert thief.get("/dashboard/").status_code == 302


def test_next_parameter_never_leaves_the_dashboard(client):
    token = csrf_of(client)
    response = client.post(
        "/dashboard/login", data={"api_key": ADMIN_API_KEY, "csrf_token": token, "next": "//evil.example/x"}
    )
    assert response.headers["Location"].endswith("/dashboard/")


def test_user_search_finds_by_email_and_jumps_to_an_id(client):
    user, _ = create_user(client, email="findme@example.com")
    sign_in(client)
    assert "findme@example.com" in client.get("/dashboard/users?q=findme").get_data(as_text=True)
    assert client.get(f"/dashboard/users?q={user['id']}").headers["Location"].endswith(f"/dashboard/users/{user['id']}")


def test_audit_csv_export_filters_and_neutralises_formulas(client):
    token = csrf_of(client)
    formula = '=HYPERLINK("http://evil.example")'
    client.post("/dashboard/login", data={"api_key": "wrong", "csrf_token": token}, headers={"User-Agent": formula})
    sign_in(client)
    response = client.get("/dashboard/audit/export.csv?action=auth_failure")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    header, *rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert header[:3] == ["id", "created_at", "action"] and len(rows) == 1
    assert rows[0][header.index("user_agent")] == "'" + formula


def test_security_events_view_and_bad_filters(client, sql):
    sql("INSERT INTO security_events (type, ip, details) VALUES ('ip_blocked', '203.0.113.9', '{}')")
    sign_in(client)
    page = client.get("/dashboard/audit?view=security&ip=203.0.113.9").get_data(as_text=True)
    assert "ip_blocked" in page and "203.0.113.9" in page
    assert "IP must be" in client.get("/dashboard/audit?view=security&ip=nope").get_data(as_text=True)


def test_the_audit_filters_offer_and_apply_every_action_and_event_type_written(client, sql):
    sql(
        "INSERT INTO api_key_audit_logs (action, actor, details) VALUES ('budget_threshold', 'user:1', '{}'),"
        " ('create', 'user:1', '{}')"
    )
    sql(
        "INSERT INTO security_events (type, ip, details) VALUES ('ip_unblocked', '203.0.113.7', '{}'),"
        " ('ip_blocked', '203.0.113.8', '{}')"
    )
    sign_in(client)
    page = client.get("/dashboard/audit?action=budget_threshold").get_data(as_text=True)
    assert '<option value="budget_threshold" selected' in page and "user:1" in page
    export = client.get("/dashboard/audit/export.csv?action=budget_threshold").get_data(as_text=True)
    assert len(export.strip().splitlines()) == 2  # the header and the one budget row
    page = client.get("/dashboard/audit?view=security&type=ip_unblocked").get_data(as_text=True)
    assert "203.0.113.7" in page and "203.0.113.8" not in page


@pytest.mark.parametrize("path", ["/dashboard/models", "/dashboard/jobs", "/dashboard/audit", "/dashboard/users"])
def test_every_page_renders(client, path):
    sign_in(client)
    assert client.get(path).status_code == 200


def test_run_now_records_a_dashboard_run(client, sql):
    sign_in(client)
    token = csrf_of(client, "/dashboard/jobs")
    response = client.post("/dashboard/jobs/release_stale_holds/run", data={"csrf_token": token}, follow_redirects=True)
    assert "release_stale_holds succeeded" in response.get_data(as_text=True)
    (run,) = sql("SELECT status, details FROM job_runs WHERE job = 'release_stale_holds'")
    assert run["status"] == "success" and run["details"]["actor"] == "admin:bootstrap"


def test_status_page_and_badge_are_public_without_user_data(client):
    create_user(client, email="private@example.com")
    page = client.get("/status")
    text = page.get_data(as_text=True)
    assert page.status_code == 200 and 'id="status-database"' in text and "private@example.com" not in text
    assert "user_count" not in text and "Cache-Control" in page.headers
    badge = client.get("/status/badge.svg")
    assert badge.mimetype == "image/svg+xml" and b"<svg" in badge.data


def test_series_keeps_closed_buckets_and_counts_the_open_one_live(app, sql):
    from ops_gateway.core import db
    from ops_gateway.dashboard import series as dashboard_series

    sql(
        "INSERT INTO usage_records (request_id, user_id, model, prompt_tokens, completion_tokens, cost, status,"
        " latency_ms, created_at) SELECT 'r' || i, 1, 'm', 10, 5, 0.5, CASE WHEN i = 1 THEN 'error' ELSE 'success' END,"
        " i * 100, now() - interval '30 minutes' FROM generate_series(1, 4) AS i"
    )
    sql(
        "INSERT INTO usage_records (request_id, user_id, model, status, latency_ms)"
        " VALUES ('now', 1, 'm', 'success', 1)"
    )
    with app.app_context(), db.transaction() as cur:
        first = dashboard_series.last_24h(cur)
        totals = dashboard_series.summarise(first["points"])
    assert len(first["points"]) == 288 and first["points"][-1]["requests"] == 1
    assert totals["requests"] == 5 and totals["errors"] == 1 and totals["tokens"] == 60
    assert sql("SELECT count(*) AS n FROM usage_5m WHERE requests > 0")[0]["n"] == 1
    busy = [p for p in first["points"] if p["requests"] == 4][0]
    assert busy["p95_ms"] == pytest.approx(385.0)
