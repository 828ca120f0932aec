"""The clock built by scheduler.clock, run in-process: a broken job stops neither the clock nor other jobs."""

import time

from apscheduler.schedulers.background import BackgroundScheduler

from scheduler.clock import build_scheduler
from scheduler.jobs import JOBS
from tests.helpers import ADMIN

EVERY_SECOND = {job.interval_setting: 1 for job in JOBS.values()}


def test_a_broken_job_records_failed_and_the_others_keep_running(make_app, sql, tmp_path, requests_mock):
    requests_mock.get("http://openrouter.test/api/v1/models", json={"data": [{"id": "m/a"}]})
    requests_mock.get("http://openrouter.test/api/v1/embeddings/models", json={"data": []})
    blocker = tmp_path / "file"
    blocker.write_text("")
    app = make_app(BACKUP_DIR=str(blocker / "backups"), **EVERY_SECOND)
    scheduler = build_scheduler(app, BackgroundScheduler)
    scheduler.start()
    try:
        time.sleep(3.6)
        assert scheduler.running
    finally:
        scheduler.shutdown(wait=True)
    runs = sql("SELECT job, status, error, details->>'tick' AS tick FROM job_runs")
    broken = [r for r in runs if r["job"] == "backup_verification"]
    assert len(broken) >= 2 and all(r["status"] == "failed" for r in broken)
    assert all(r["error"].startswith(("NotADirectoryError", "FileExistsError")) for r in broken)
    for name in set(JOBS) - {"backup_verification"}:
        statuses = [r["status"] for r in runs if r["job"] == name]
        assert statuses.count("success") >= 2 and "failed" not in statuses, (name, statuses)
    ticks = [(r["job"], r["tick"]) for r in runs]
    assert len(ticks) == len(set(ticks))  # one run per job per tick


def test_evaluate_alerts_job_runs_the_alert_rules(client):
    response = client.post("/admin/jobs/evaluate_alerts/run", headers=ADMIN)
    assert response.status_code == 200
    run = response.get_json()
    assert run["status"] == "success", run["error"]
    assert "health_status" in run["details"]
