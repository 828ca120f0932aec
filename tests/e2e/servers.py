"""Real processes for end-to-end tests and benchmarks: gunicorn (Procfile web line) and the fake OpenRouter."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from devtools.ports import unused_port as free_port  # below the ephemeral range

ROOT = Path(__file__).resolve().parents[2]


def stop_processes(processes, timeout=10):
    """Terminate every process, then reap each, killing one that outlives ``timeout`` seconds."""
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_for(url, timeout=30.0, process=None):
    """Poll ``url`` until it answers (any status), failing early if ``process`` died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before {url} answered")
        try:
            requests.get(url, timeout=1)
            return
        except requests.RequestException:
            time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


class Server:
    """A subprocess serving HTTP on a port, in a process group of its own; stopped (and reaped) by ``stop``."""

    stop_signal = signal.SIGTERM

    def __init__(self, args, port, env, log_path):
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.process = subprocess.Popen(
            args, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT, process_group=0
        )

    def stop(self):
        """Stop with ``stop_signal``, then kill if it lingers; then kill what is left of its group.

        A gunicorn worker still booting when its master quits can outlive it (seen once in CI,
        an orphaned worker left running); it stays in the master's process group.
        """
        if self.process.poll() is None:
            self.process.send_signal(self.stop_signal)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass  # nothing left
        self._log.close()

    def log_text(self):
        """What the process printed so far."""
        return Path(self.log_path).read_text(errors="replace")


def start_fake_openrouter(tmp_dir, workers=1):
    """The project's fake OpenRouter on a free port; its state file lives in ``tmp_dir``."""
    port = free_port()
    state_file = Path(tmp_dir) / f"fake-openrouter-{port}.json"
    args = [
        sys.executable,
        "-m",
        "devtools.fake_openrouter",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--state-file",
        str(state_file),
    ]
    server = Server(args, port, dict(os.environ), Path(tmp_dir) / f"fake-openrouter-{port}.log")
    wait_for(f"{server.url}/_control", process=server.process)
    server.base_url = f"{server.url}/api/v1"
    return server


def start_gateway(tmp_dir, settings, workers=4, threads=8, extra_env=None):
    """gunicorn exactly as the Procfile's web line runs it, against the given database and Redis."""
    port = free_port()
    env = dict(os.environ)
    env.update(
        {
            "PORT": str(port),
            "WEB_CONCURRENCY": str(workers),
            "WEB_THREADS": str(threads),
            "DATABASE_URL": settings["DATABASE_URL"],
            "REDIS_URL": settings["REDIS_URL"],
            "KEY_HASH_SECRET": settings["KEY_HASH_SECRET"],
            "ADMIN_API_KEY": settings["ADMIN_API_KEY"],
            "OPENROUTER_BASE_URL": settings["OPENROUTER_BASE_URL"],
            "OPENROUTER_API_KEY": "or-e2e-key",
            "LOG_LEVEL": "warning",
            "INSTANCE_PATH": settings["INSTANCE_PATH"],
            "PROMETHEUS_MULTIPROC_DIR": str(Path(tmp_dir) / f"prom-{port}"),
            **(extra_env or {}),
        }
    )
    args = [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]
    server = Server(args, port, env, Path(tmp_dir) / f"gateway-{port}.log")
    # gunicorn's quick shutdown: a graceful one waits out the test clients' kept-alive connections.
    server.stop_signal = signal.SIGINT
    wait_for(f"{server.url}/health/live", timeout=60, process=server.process)
    return server


def exchange(server, raw, finish_sending=False):
    """Send raw bytes to ``server`` (then end the sending side if ``finish_sending``) and read until
    it closes the connection: the status, lower-cased headers, body, and the seconds that took."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        started = time.monotonic()
        sock.sendall(raw)
        if finish_sending:
            sock.shutdown(socket.SHUT_WR)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in header_lines)
    return int(status_line.split(" ")[1]), headers, body, time.monotonic() - started
