"""gunicorn settings for the Procfile's web process."""

import os

from ops_gateway.config import load_settings

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
    multiproc_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if multiproc_dir:
        os.makedirs(multiproc_dir, exist_ok=True)
        for stale in os.listdir(multiproc_dir):
            os.remove(os.path.join(multiproc_dir, stale))


def child_exit(server, worker):
    """Drop a dead worker's live gauges from the shared Prometheus directory."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
