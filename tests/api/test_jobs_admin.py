"""/admin/jobs, the ``jobs`` CLI and the runner's single-runner guarantee, on real Postgres."""

import json
from datetime import UTC, datetime

from scheduler import runner
from scheduler.jobs import JOBS
from tests.helpers import ADMIN, assert_error


def run(client, name):
    """POST /admin/jobs/<name>/run with the bootstrap admin key."""
    return client.post(f"/admin/jobs/{name}/run", headers=ADMIN)


def test_job_list_shows_schedule_next_run_and_history(client):
    assert run(client, "usage_rollup").status_code == 200
    response = client.get("/admin/jobs?history=5", headers=ADMIN)
    assert response.status_code == 200
    jobs = {job["name"]: job for job in response.get_json()["jobs"]}
    assert set(jobs) == set(JOBS)
    rollup = jobs["usage_rollup"]
    assert rollup["enabled"] and rollup["interval_seconds"] == 300
    assert rollup["interval_setting"] == "USAGE_ROLLUP_INTERVAL_SECONDS"
    assert datetime.fromisoformat(rollup["next_run_at"]) > datetime.now(UTC)
    assert rollup["last_run"]["status"] == "success"
    assert [r["job"] for r in rollup["recent_runs"]] == ["usage_rollup"]
    assert jobs["retention"]["interval_seconds"] == 86400 and jobs["retention"]["last_run"] is None


def test_interval_zero_leaves_a_job_unscheduled_and_scale_multiplies(make_app):
    app = make_app(RETENTION_INTERVAL_SECONDS=0, SCHEDULER_INTERVAL_SCALE=0.5)
    jobs = {j["name"]: j for j in app.test_client().get("/admin/jobs", headers=ADMIN).get_json()["jobs"]}
    assert jobs["retention"]["enabled"] is False and jobs["retention"]["next_run_at"] is None
    assert jobs["usage_rollup"]["interval_seconds"] == 150


def test_run_now_returns_the_recorded_run(client, sql):
    response = run(client, "usage_rollup")
    body = response.get_json()
    assert response.status_code == 200
    assert body["status"] == "success" and body["error"] is None
    assert body["details"]["trigger"] == "admin" and body["details"]["actor"] == "admin:bootstrap"
    assert {"hour", "day"} <= set(body["details"])
    row = sql("SELECT status, finished_at, duration_ms FROM job_runs WHERE id = %s", (body["id"],))[0]
    assert row["status"] == "success" and row["finished_at"] and row["duration_ms"] >= 0


def test_unknown_job_is_a_404_envelope(client):
    error = assert_error(run(client, "no_such_job"), 404, "job_not_found")
    assert "usage_rollup" in error["details"]["jobs"]


def test_jobs_need_an_admin_key(client):
    assert_error(client.get("/admin/jobs"), 401, "unauthorized")
    assert_error(client.post("/admin/jobs/usage_rollup/run"), 401, "unauthorized")


def test_job_running_elsewhere_is_skipped_with_409(client, sql):
    sql("INSERT INTO job_locks VALUES ('usage_rollup', 'elsewhere:1', now(), now() + interval '1 minute')")
    error = assert_error(run(client, "usage_rollup"), 409, "job_running")
    skipped = sql("SELECT status, details FROM job_runs WHERE id = %s", (error["details"]["run"],))[0]
    assert skipped["status"] == "skipped" and skipped["details"]["reason"] == "running_elsewhere"
    assert sql("SELECT holder FROM job_locks") == [{"holder": "elsewhere:1"}]  # another runner's lease is left alone


def test_an_expired_lease_no_longer_blocks_and_a_finished_run_releases_its_own(client, sql):
    sql("INSERT INTO job_locks VALUES ('usage_rollup', 'gone:1', now(), now() - interval '1 second')")
    assert run(client, "usage_rollup").status_code == 200
    assert sql("SELECT job FROM job_locks") == []


def test_a_tick_runs_once_however_many_clocks_fire_for_it(app, sql):
    tick = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
    with app.app_context():
        first = runner.run_job("usage_rollup", trigger="schedule", tick=tick)
        second = runner.run_job("usage_rollup", trigger="schedule", tick=tick)
    assert first["status"] == "success" and first["details"]["tick"] == tick.isoformat()
    assert second["status"] == "skipped" and second["details"]["reason"] == "tick_already_run"
    assert sql("SELECT last_tick FROM job_leases WHERE job = 'usage_rollup'")[0]["last_tick"] == tick


def test_runs_left_running_by_a_dead_runner_are_marked_failed(client, sql):
    sql("INSERT INTO job_runs (job, status, runner) VALUES ('usage_rollup', 'running', 'gone:1')")
    assert run(client, "usage_rollup").status_code == 200
    orphan = sql("SELECT status, error FROM job_runs WHERE runner = 'gone:1'")[0]
    assert orphan == {"status": "failed", "error": "runner exited before finishing"}


def test_cli_runs_a_job_once_and_prints_its_run(app, sql):
    result = app.test_cli_runner().invoke(args=["jobs", "run", "usage_rollup"])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output)
    assert printed["status"] == "success" and printed["details"]["trigger"] == "cli"
    assert sql("SELECT count(*) AS n FROM job_runs WHERE job = 'usage_rollup'")[0]["n"] == 1
    listing = app.test_cli_runner().invoke(args=["jobs", "list"])
    assert "backup_verification" in listing.output and "86400s" in listing.output


def test_cli_exits_non_zero_when_the_job_does_not_succeed(app):
    # BACKUP_DIR is unset in tests: the job is skipped, which an operator must notice.
    result = app.test_cli_runner().invoke(args=["jobs", "run", "backup_verification"])
    assert result.exit_code == 1
    assert json.loads(result.output)["details"]["reason"] == "BACKUP_DIR is not set"
