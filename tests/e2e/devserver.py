"""``make run`` / ``make run-demo`` as a subprocess on a temp instance folder and a free port."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import requests

from tests.e2e.servers import ROOT, free_port

START_TIMEOUT_SECONDS = 90


@contextmanager
def scratch_instance():
    """A private instance folder, removed afterwards: not pytest's rotating basetemp, which a
    concurrent pytest run may prune under the embedded servers (as tests/conftest.py says)."""
    parent = Path(tempfile.mkdtemp(prefix="ops-gateway-devserver-"))
    try:
        yield parent / "instance"
    finally:
        shutil.rmtree(parent, ignore_errors=True)


class DevServer:
    """``python -m devtools.devserver`` with its output in a log file."""

    def __init__(self, instance_path, *args, port=None, env=None):
        """Start it; ``env`` entries set to None are removed from the inherited environment."""
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = Path(instance_path).with_name(f"{Path(instance_path).name}-{self.port}.log")
        merged = dict(os.environ, INSTANCE_PATH=str(instance_path), PORT=str(self.port), LOG_LEVEL="warning")
        for name, value in (env or {}).items():
            merged.pop(name, None) if value is None else merged.__setitem__(name, value)
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "devtools.devserver", *args],
                cwd=ROOT,
                env=merged,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def wait_healthy(self, statuses=("healthy",)):
        """Poll /health until its status is one of ``statuses``; return the document."""
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        body = None
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.output()
            try:
                body = requests.get(f"{self.url}/health", timeout=2).json()
                if body["status"] in statuses:
                    return body
            except (requests.RequestException, ValueError):
                pass
            time.sleep(0.3)
        raise TimeoutError(f"/health never reached {statuses}: {body}\n{self.output()}")

    def interrupt(self, timeout=60):
        """Ctrl-C (SIGINT to the run script alone, as a terminal sends it); return the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        return self.process.wait(timeout=timeout)

    def output(self):
        """What it printed so far."""
        return self.log_path.read_text(errors="replace")

    def line_after(self, prefix):
        """The rest of the first printed line starting with ``prefix``."""
        return next(line[len(prefix) :].strip() for line in self.output().splitlines() if line.startswith(prefix))
