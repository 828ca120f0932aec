"""Scheduled jobs run at once through ``POST /admin/jobs/<name>/run`` for API tests, and the alert
settings that keep the resource rules quiet while another rule is under test."""

from tests.helpers import ADMIN

# CPU, memory and pool thresholds no test machine reaches, so only the rule under test can fire.
QUIET = {"ALERT_CPU_PERCENT": 1000.0, "ALERT_MEMORY_PERCENT": 1000.0, "ALERT_POOL_SATURATION_PERCENT": 1000.0}


def run_reconciliation(client):
    """Run the generation reconciliation job with the bootstrap key; return its details."""
    run = client.post("/admin/jobs/reconcile_generations/run", headers=ADMIN)
    assert run.status_code == 200, run.get_json()
    return run.get_json()["details"]


def run_retention(client):
    """Run the retention job with the bootstrap key, which must succeed; return its details."""
    response = client.post("/admin/jobs/retention/run", headers=ADMIN)
    assert response.status_code == 200 and response.get_json()["status"] == "success", response.get_json()
    return response.get_json()["details"]
