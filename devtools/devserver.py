"""``make run`` and ``make run-demo``: the gateway (gunicorn) and the scheduler on embedded servers.

Starts the embedded Postgres and Redis (or reuses running ones), runs the Procfile's web and clock
processes with them, and stops everything on Ctrl-C, keeping the data under the instance folder.
``--demo`` also runs the bundled fake OpenRouter, so completions work without an upstream key.

The children run in their own process group: Ctrl-C reaches only this process, which stops them
in order (gunicorn's workers would otherwise each print a traceback for the interrupt).
"""

import argparse
import errno
import fcntl
import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager

from devtools.fake_upstream import start_fake_openrouter
from ops_gateway.core import migrations
from ops_gateway.core.config import ConfigError, load_settings
from ops_gateway.core.db import Database
from ops_gateway.core.embedded import stop_postgres, stop_redis
from ops_gateway.services import instance_path_from_env, resolve_services

STOP_TIMEOUT_SECONDS = 30
LOOPBACK = ("127.0.0.1", "::1", "localhost")
NO_UPSTREAM_WARNING = (
    "ops-gateway: warning: OPENROUTER_API_KEY is not set, so /v1 requests will fail and /health says"
    " degraded (openrouter: unconfigured). Set it, or run `make run-demo` for the bundled fake upstream."
)


def main(argv=None):
    """Start the services, print where things are, supervise until interrupted; exit non-zero on failure."""
    args = _parse_args(argv)
    try:
        settings = load_settings(os.environ, {"EMBEDDED_SERVICES": True})
    except ConfigError as exc:
        sys.exit(f"ops-gateway: {exc}")
    refuse_if_port_busy(local_host(), settings.PORT)
    instance_path = run_instance_path(args.demo)
    os.makedirs(instance_path, exist_ok=True)
    with embedded_servers_in_use(instance_path):
        sys.exit(_run(settings, instance_path, args.demo))


def run_instance_path(demo):
    """Where a run keeps its data: INSTANCE_PATH, else ``instance/`` (``instance/demo/`` for the
    demo, so the fake's models stay out of real data)."""
    instance_path = instance_path_from_env()
    if demo and not os.environ.get("INSTANCE_PATH"):
        instance_path = os.path.join(instance_path, "demo")
    return instance_path


def _parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m devtools.devserver", description=__doc__.split("\n")[0])
    parser.add_argument("--demo", action="store_true", help="run against the bundled fake OpenRouter")
    return parser.parse_args(argv)


def local_host():
    """The address ``make run`` binds: HOST when set, else loopback only, so a development gateway
    (its bootstrap admin key live, /metrics open) is not reachable from the network by default."""
    return os.environ.get("HOST") or "127.0.0.1"


def local_url(host, port):
    """The gateway's URL on this machine (a wildcard address is reached through loopback)."""
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def refuse_if_port_busy(host, port):
    """Exit with one line when PORT is taken (gunicorn would retry, fail and leave us exiting 0)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn binds
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            sys.exit(f"ops-gateway: port {port} is already in use (another `make run`?); stop it or set PORT")


@contextmanager
def embedded_servers_in_use(instance_path):
    """Hold a shared lock on the instance's embedded servers; the last run to leave stops them.

    Two runs in one checkout (on two ports) share the servers, so the first to stop must leave
    them to the other. Each run unlocks, then tries for the lock alone: only a run that gets it
    knows no other run is still using them.
    """
    with open(os.path.join(instance_path, "devserver.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return
            if not os.environ.get("DATABASE_URL"):
                stop_postgres(instance_path)
            if not os.environ.get("REDIS_URL"):
                stop_redis(instance_path)


def _run(settings, instance_path, demo):
    """Run the children until Ctrl-C, SIGTERM or one of them exits; return the exit status."""
    settings = resolve_services(settings, instance_path)
    env = dict(os.environ, INSTANCE_PATH=instance_path, HOST=local_host())
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    for name in ("DATABASE_URL", "REDIS_URL", "KEY_HASH_SECRET", "ADMIN_API_KEY", "SECRET_KEY"):
        env[name] = settings[name]
    migrations.migrate(Database(settings.DATABASE_URL))

    helpers = []
    if demo:
        fake, env["OPENROUTER_BASE_URL"] = start_fake_openrouter(instance_path)
        env["OPENROUTER_API_KEY"] = "demo-key-for-the-fake-upstream"
        env.setdefault("DEFAULT_PLAN", "dev")  # trial's 10 requests a minute would stop a newcomer's first tries
        helpers.append(fake)
    elif not settings.OPENROUTER_API_KEY:
        print(NO_UPSTREAM_WARNING, file=sys.stderr, flush=True)

    exposed = "" if env["HOST"] in LOOPBACK else f"; bound to {env['HOST']}: reachable from the network"
    url = local_url(env["HOST"], settings.PORT)
    print(f"ops-gateway on {url}  (docs: /docs, health: /health{exposed})", flush=True)
    if demo:
        print(f"demo upstream: the bundled fake OpenRouter at {env['OPENROUTER_BASE_URL']}", flush=True)
        print(f"demo admin key: {settings.ADMIN_API_KEY}", flush=True)
    else:
        print(f"admin key: ADMIN_API_KEY in {os.path.join(instance_path, 'secrets.env')}", flush=True)
    web = _spawn(["-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"], web_env(env, instance_path, settings.PORT))
    children = [web, _spawn(["-m", "scheduler"], env)]
    if env.get("OPENROUTER_API_KEY"):
        # The clock refreshes the catalogue on its first aligned tick; a fresh run wants it now.
        helpers.append(_spawn(["-m", "flask", "--app", "wsgi", "refresh-models"], env))
    try:
        return _supervise(children)
    finally:
        _stop(children + helpers)


def web_env(env, instance_path, port):
    """gunicorn's environment: its own Prometheus directory, which its start empties.

    Per port, so a second run in the same checkout leaves the first's files alone; the other
    children, which serve no ``/metrics``, keep their metrics in memory, out of the way of that
    emptying.
    """
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.path.join(instance_path, "prometheus", str(port))
    return dict(env, PROMETHEUS_MULTIPROC_DIR=directory)


def _spawn(args, env):
    return subprocess.Popen([sys.executable, *args], env=env, process_group=0)


def _supervise(children):
    stopping = []
    # Set, not inherited: a shell starting us in the background would have SIGINT ignored.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.append(True))
    while not stopping and all(child.poll() is None for child in children):
        time.sleep(0.2)
    if stopping:
        return 0
    failed = next(child for child in children if child.poll() is not None)
    print(f"ops-gateway: {' '.join(failed.args[1:])} exited with status {failed.returncode}", file=sys.stderr)
    return failed.returncode or 1


def _stop(processes):
    """Stop each child, then kill what is left of its process group (a gunicorn worker still
    booting when its master quits can outlive it)."""
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass  # nothing left


if __name__ == "__main__":
    main()
