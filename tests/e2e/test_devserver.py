"""``make run`` / ``make run-demo`` as a new user meets them: start, warnings, a second run, Ctrl-C."""

import os
import subprocess
import sys
import time

import pytest
import requests

from tests.e2e.devserver import DevServer, scratch_instance
from tests.e2e.servers import ROOT

NOISE = ("Traceback", "KeyError", "XDG_RUNTIME_DIR", "SystemExit")


@pytest.fixture
def instance():
    """A private instance folder for one test's runs."""
    with scratch_instance() as path:
        yield path


def cached_model_count(server, admin_headers):
    """Models in the shared catalogue, once the start-up refresh has landed (within 15 s)."""
    deadline = time.monotonic() + 15
    while True:
        info = requests.get(f"{server.url}/admin/cache-status", headers=admin_headers, timeout=5).json()["cache_info"]
        if info["has_data"] or time.monotonic() > deadline:
            return info["total_cached_models"] if info["has_data"] else 0
        time.sleep(0.3)


def psql(instance, query):
    """``make psql`` on the run's instance folder, one query, unaligned output."""
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    command = [sys.executable, "-m", "devtools.psql", "--", "-tAc", query]
    return subprocess.run(
        command, cwd=ROOT, env={**env, "INSTANCE_PATH": str(instance)}, capture_output=True, text=True
    )


def test_demo_run_serves_the_fake_catalogue_and_ctrl_c_stops_everything_quietly(instance):
    server = DevServer(instance, "--demo")
    try:
        health = server.wait_healthy()
        assert health["openrouter"] == "connected" and health["reasons"] == []
        fake_url = server.line_after("demo upstream: the bundled fake OpenRouter at")
        admin = {"Authorization": f"Bearer {server.line_after('demo admin key:')}"}
        assert cached_model_count(server, admin) > 0  # refreshed at start-up, not at the clock's first tick
        assert "model catalogue refreshed:" in server.output()
        assert psql(instance, "SELECT count(*) FROM plans").stdout.strip() == "4"  # make psql
        created = requests.post(
            f"{server.url}/admin/users", json={"email": "new@example.com"}, headers=admin, timeout=5
        )
        assert created.json()["user"]["plan"] == "dev"  # not trial's 10 a minute for a newcomer's first tries
    finally:
        assert server.interrupt() == 0
    output = server.output()
    assert not [word for word in NOISE if word in output], output
    assert not (instance / "pgdata" / "postmaster.pid").exists()
    assert not (instance / "redis" / "redis.sock").exists()
    with pytest.raises(requests.ConnectionError):
        requests.get(fake_url + "/models", timeout=2)  # the fake stopped with make run-demo
    stopped = psql(instance, "SELECT 1")  # never starts a server it would leave behind
    assert stopped.returncode == 1 and "no embedded Postgres is running" in stopped.stderr


def test_without_upstream_key_one_warning_and_health_says_unconfigured(instance):
    home = instance.with_name("home")  # gunicorn would put its control socket under it
    home.mkdir()
    env = {"OPENROUTER_API_KEY": None, "OPENROUTER_BASE_URL": None, "HOST": None, "HOME": str(home)}
    server = DevServer(instance, env={**env, "XDG_RUNTIME_DIR": None})
    try:
        health = server.wait_healthy(statuses=("degraded",))
        assert health["openrouter"] == "unconfigured"
        assert any("OPENROUTER_API_KEY" in reason for reason in health["reasons"])
        warnings = [line for line in server.output().splitlines() if "OPENROUTER_API_KEY is not set" in line]
        assert len(warnings) == 1 and "make run-demo" in warnings[0]
        assert server.line_after("ops-gateway on").startswith(f"{server.url}  (docs")
        with pytest.raises(requests.ConnectionError):  # loopback only: 0.0.0.0 would answer on 127.0.0.2 too
            requests.get(f"http://127.0.0.2:{server.port}/health/live", timeout=2)
        assert not (home / ".gunicorn").exists()  # no control socket shared between runs
    finally:
        assert server.interrupt() == 0


@pytest.mark.slow  # two dev servers started and stopped in turn
def test_a_second_run_leaves_the_first_ones_servers_and_metrics_alone(instance):
    first = DevServer(instance, "--demo")
    try:
        first.wait_healthy()
        assert requests.get(f"{first.url}/user/balance", timeout=5).status_code == 401  # counted in first's metrics
        same_port = DevServer(instance, "--demo", port=first.port)
        assert same_port.process.wait(timeout=60) == 1
        assert f"port {first.port} is already in use" in same_port.output()

        second = DevServer(instance, "--demo")
        second.wait_healthy()
        assert second.interrupt() == 0
        health = requests.get(f"{first.url}/health", timeout=5).json()
        assert (health["database"], health["redis"], health["status"]) == ("connected", "connected", "healthy")
        metrics = requests.get(f"{first.url}/metrics", timeout=5).text  # the second's start emptied only its own
        assert 'gateway_http_requests_total{method="GET",route="/user/balance",status="401"}' in metrics
    finally:
        assert first.interrupt() == 0
    assert not (instance / "pgdata" / "postmaster.pid").exists()


def test_a_setting_that_does_not_parse_is_one_line_and_a_failed_start(tmp_path):
    env = dict(os.environ, INSTANCE_PATH=str(tmp_path), PORT="abc")
    result = subprocess.run(
        [sys.executable, "-m", "devtools.devserver"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert "PORT='abc' is invalid" in result.stderr
