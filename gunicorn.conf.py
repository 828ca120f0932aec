"""gunicorn settings for the Procfile's web process."""

import os
import shutil


def _fresh_multiprocess_dir():
    """Prometheus multiprocess files must start empty and exist before any metric is created."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        shutil.rmtree(directory, ignore_errors=True)
        os.makedirs(directory, exist_ok=True)


_fresh_multiprocess_dir()  # before importing ops_gateway, whose modules define the metrics

from ops_gateway.config import load_settings  # noqa: E402

_settings = load_settings(os.environ)

bind = f"0.0.0.0:{_settings.PORT}"
workers = _settings.WEB_CONCURRENCY
# Threads let one worker keep serving while another request waits on a slow upstream.
worker_class = "gthread"
threads = _settings.WEB_THREADS
timeout = 120
graceful_timeout = 30
keepalive = 5
accesslog = None  # ops_gateway.app writes the access log with request ids


def on_starting(server):
    """Start embedded services once in the master so workers share them (no-op with URLs set)."""
    from ops_gateway import instance_path_from_env, resolve_services

    settings = resolve_services(load_settings(os.environ), instance_path_from_env())
    for name in ("DATABASE_URL", "REDIS_URL", "KEY_HASH_SECRET", "ADMIN_API_KEY", "SECRET_KEY"):
        if settings[name]:
            os.environ[name] = settings[name]


def child_exit(server, worker):
    """Drop a dead worker's live gauges from the shared Prometheus directory."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
