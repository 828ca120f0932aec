"""``make run``: the gateway (gunicorn) and the scheduler on the embedded Postgres and Redis.

Starts the embedded servers once, runs the Procfile's web and clock processes with them, and
stops everything on Ctrl-C, keeping the data under the instance folder for the next run.
"""

import os
import signal
import subprocess
import sys
import time

from ops_gateway.app import instance_path_from_env, resolve_services
from ops_gateway.core import migrations
from ops_gateway.core.config import load_settings
from ops_gateway.core.db import Database
from ops_gateway.core.embedded import stop_postgres, stop_redis


def main():
    """Start the services, print where things are, supervise until interrupted."""
    instance_path = instance_path_from_env()
    os.makedirs(instance_path, exist_ok=True)
    settings = resolve_services(load_settings(os.environ, {"EMBEDDED_SERVICES": True}), instance_path)
    env = dict(os.environ)
    for name in ("DATABASE_URL", "REDIS_URL", "KEY_HASH_SECRET", "ADMIN_API_KEY", "SECRET_KEY"):
        env[name] = settings[name]
    env.setdefault("PROMETHEUS_MULTIPROC_DIR", os.path.join(instance_path, "prometheus"))
    migrations.migrate(Database(settings.DATABASE_URL))

    port = settings.PORT
    print(f"ops-gateway on http://127.0.0.1:{port}  (docs: /docs, health: /health)", flush=True)
    print(f"admin key: ADMIN_API_KEY in {os.path.join(instance_path, 'secrets.env')}", flush=True)
    children = [
        subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"], env=env),
        subprocess.Popen([sys.executable, "-m", "scheduler"], env=env),
    ]
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    try:
        while not stopping and all(child.poll() is None for child in children):
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        for child in children:
            if child.poll() is None:
                child.terminate()
        for child in children:
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()
        if not os.environ.get("DATABASE_URL"):
            stop_postgres(instance_path)
        if not os.environ.get("REDIS_URL"):
            stop_redis(instance_path)


if __name__ == "__main__":
    main()
