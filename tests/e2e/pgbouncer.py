"""A real PgBouncer (Debian's ``pgbouncer``; ``make test`` installs it) in transaction mode, for tests.

It listens on a free TCP port in front of the embedded Postgres (reached over its Unix socket)
and pools the way managed poolers do: pool_mode=transaction, each client transaction on
whichever server connection is free.
"""

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import psycopg2

from scheduler.jobs import JOBS
from tests.e2e.servers import free_port, stop_processes

PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
POSTGRES_USER = "pgserver"  # under root, the embedded Postgres (and PgBouncer, which refuses root) runs as this
TICK_SECONDS = 4  # every job's interval for the clocks that tests run behind PgBouncer
# backup_verification runs pg_dump/pg_restore, whose session-level SETs (search_path) would leak
# into the pooler's server connections: it needs a direct connection, not a transaction pooler.
POOLED_JOBS = [job for job in JOBS.values() if job.name != "backup_verification"]


class PgBouncer:
    """A PgBouncer process; ``url(database)`` connects through it; ``stop`` ends it."""

    def __init__(self, pg_url, pool_size):
        parts = urlsplit(pg_url)
        socket_dir = parse_qs(parts.query)["host"][0]
        self.user = parts.username
        self.port = free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="pgbouncer-"))
        self.directory.chmod(0o755)  # readable by the user PgBouncer switches to
        config = self.directory / "pgbouncer.ini"
        config.write_text(
            "[databases]\n"
            f"* = host={socket_dir} port={parts.port or 5432} user={self.user}\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {self.port}\nunix_socket_dir =\n"
            "auth_type = any\npool_mode = transaction\n"
            f"default_pool_size = {pool_size}\nmax_client_conn = 1000\n"
            "server_reset_query =\nlog_connections = 0\nlog_disconnections = 0\n"
        )
        args = [PGBOUNCER, str(config)] + (["-u", POSTGRES_USER] if os.geteuid() == 0 else [])
        self.log_path = self.directory / "pgbouncer.log"
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT)
        self._wait_until_serving()

    def url(self, database):
        """A URL of ``database`` through PgBouncer."""
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def _wait_until_serving(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"pgbouncer exited: {self.log_path.read_text(errors='replace')}")
            try:
                psycopg2.connect(self.url("postgres"), connect_timeout=1).close()
                return
            except psycopg2.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self):
        """Terminate PgBouncer and remove its files."""
        stop_processes([self.process])
        self._log.close()
        shutil.rmtree(self.directory, ignore_errors=True)
