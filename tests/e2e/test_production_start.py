"""The Procfile's processes refuse to start without their managed services.

Each runs as the Procfile runs it, in a clean environment (no EMBEDDED_SERVICES), from a scratch
working directory whose folder is also INSTANCE_PATH, so a process that wrongly fell back to
embedded servers would start them there (and be stopped), never in the checkout.
"""

import os
import subprocess
import sys

import pytest

from ops_gateway.core import embedded
from tests.e2e.servers import ROOT, free_port

PROCFILE = {
    "web": ["-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"), "wsgi:app"],
    "release": ["-m", "flask", "--app", "wsgi", "migrate"],
    "clock": ["-m", "scheduler"],
}


def run_process(args, scratch, **env):
    """Run one Procfile process to its exit (at most 60 s); the embedded servers it might start are stopped."""
    clean_env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(scratch),
        "PYTHONPATH": str(ROOT),
        "INSTANCE_PATH": str(scratch),
        "PORT": str(free_port()),
        **env,
    }
    try:
        return subprocess.run(
            [sys.executable, *args], cwd=scratch, env=clean_env, capture_output=True, text=True, timeout=60
        )
    finally:
        embedded.stop_redis(scratch)
        embedded.stop_postgres(scratch)


def refusal_lines(stderr):
    """The lines of ``stderr`` that are the refusal."""
    return [line for line in stderr.splitlines() if line.startswith("ops-gateway: refusing to start")]


@pytest.mark.parametrize("process", sorted(PROCFILE))
def test_a_procfile_process_without_database_and_redis_urls_exits_naming_both(process, tmp_path):
    result = run_process(PROCFILE[process], tmp_path)

    assert result.returncode != 0, result.stdout + result.stderr
    [line] = refusal_lines(result.stderr)
    assert "DATABASE_URL and REDIS_URL are not set" in line
    assert "EMBEDDED_SERVICES=true" in line
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "pgdata").exists() and not (tmp_path / "redis").exists()


@pytest.mark.parametrize("process", sorted(PROCFILE))
def test_a_procfile_process_without_redis_url_exits_naming_it(process, tmp_path):
    database = {"DATABASE_URL": "postgresql://gateway@db.invalid/gateway", "KEY_HASH_SECRET": "s"}
    result = run_process(PROCFILE[process], tmp_path, **database)

    assert result.returncode != 0, result.stdout + result.stderr
    [line] = refusal_lines(result.stderr)
    assert "REDIS_URL is not set" in line
    assert "Traceback" not in result.stderr


def test_release_migrates_with_the_metrics_directory_app_json_sets_for_every_process(tmp_path, services, database_url):
    metrics_dir = tmp_path / "prometheus"  # app.json's value; only gunicorn's start would make it
    result = run_process(
        PROCFILE["release"],
        tmp_path,
        DATABASE_URL=database_url,
        REDIS_URL=services["redis_url"],
        KEY_HASH_SECRET="s",
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert metrics_dir.is_dir()
