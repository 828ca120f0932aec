"""gunicorn settings for the Procfile's web process.

gevent workers (the default): each request is a greenlet, so one waiting on upstream, on a slow
client or on an open stream costs kilobytes, not a thread, while the code stays synchronous.
The standard library is patched here, in the master, before anything imports a network
library (ssl above all), and psycopg2 gets a gevent wait callback (psycogreen) in each worker.
Both worker classes answer the requests gunicorn refuses itself with the JSON error envelope
(``blueprints.gunicorn_workers``).
"""

import os
import shutil

from ops_gateway.core.config import load_settings

_settings = load_settings(os.environ)

if _settings.WEB_WORKER_CLASS == "gevent":
    from gevent import monkey

    monkey.patch_all()


def _fresh_multiprocess_dir():
    """Prometheus multiprocess files must start empty and exist before any metric is created."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        shutil.rmtree(directory, ignore_errors=True)
        os.makedirs(directory, exist_ok=True)


_fresh_multiprocess_dir()  # before importing the app, whose modules define the metrics

bind = f"[{_settings.HOST}]:{_settings.PORT}" if ":" in _settings.HOST else f"{_settings.HOST}:{_settings.PORT}"
# gunicorn's runtime control socket (gunicornc) is unused here, and its default path is one per
# home folder: two runs on two ports would share it and the first to stop would remove it.
control_socket_disable = True
workers = _settings.WEB_CONCURRENCY
# By dotted path, so the module (and gevent's workers) is imported after the patching above.
worker_class = {
    "gevent": "blueprints.gunicorn_workers.GeventWorker",
    "gthread": "blueprints.gunicorn_workers.ThreadWorker",
}[_settings.WEB_WORKER_CLASS]
worker_connections = _settings.WEB_WORKER_CONNECTIONS  # gevent
threads = _settings.WEB_THREADS  # gthread
# Time allowed for a request line and its headers, and the idle time of a kept-alive connection.
keepalive = _settings.CLIENT_HEADER_TIMEOUT_SECONDS
timeout = 120
graceful_timeout = 30
accesslog = None  # the app (blueprints/request_hooks.py) writes the access log with request ids


def on_starting(server):
    """Resolve the services once in the master: the URLs set, embedded servers only with
    EMBEDDED_SERVICES=true (make run, tests), otherwise refuse to start naming what is missing."""
    from ops_gateway.services import instance_path_from_env, resolve_services

    settings = resolve_services(load_settings(os.environ), instance_path_from_env())
    for name in ("DATABASE_URL", "REDIS_URL", "KEY_HASH_SECRET", "ADMIN_API_KEY", "SECRET_KEY"):
        if settings[name]:
            os.environ[name] = settings[name]


def post_fork(server, worker):
    """psycopg2 waits through gevent's hub, so a query in flight lets other requests run."""
    if _settings.WEB_WORKER_CLASS == "gevent":
        from psycogreen.gevent import patch_psycopg

        patch_psycopg()


def post_request(worker, req, environ, resp):
    """Close the connection when the app refused its body (never read to the end)."""
    from blueprints.request_limits import linger_and_close

    linger_and_close(req, environ)


def child_exit(server, worker):
    """Drop a dead worker's live gauges from the shared Prometheus directory."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
