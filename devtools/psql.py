"""``make psql`` (``make psql-demo``): psql on the gateway's database, for the runbook's SQL.

DATABASE_URL when set; otherwise the embedded Postgres of ``make run`` (``--demo``: of
``make run-demo``), which must be running: this never starts one it would then leave behind.
Arguments after ``--`` go to psql, e.g. ``python -m devtools.psql -- -c "SELECT count(*) FROM users"``.
"""

import argparse
import os
import sys
from pathlib import Path

from devtools.devserver import run_instance_path
from ops_gateway.core import embedded
from ops_gateway.maintenance import backup


def database_url(demo):
    """The URL to open, or exit with one line saying which run to start first."""
    if os.environ.get("DATABASE_URL"):
        return os.environ["DATABASE_URL"]
    instance_path = run_instance_path(demo)
    if not (Path(instance_path) / "pgdata" / "postmaster.pid").exists():
        command = "make run-demo" if demo else "make run"
        sys.exit(f"ops-gateway: no embedded Postgres is running under {instance_path}; start `{command}` first")
    return embedded.ensure_postgres(instance_path)


def psql_executable():
    """psql beside the first PostgreSQL client tools found: PATH's, else the embedded Postgres's."""
    return str(backup.pg_tools(0) / "psql")


def main(argv=None):
    """Replace this process with psql on the database."""
    parser = argparse.ArgumentParser(prog="python -m devtools.psql", description=__doc__.split("\n")[0])
    parser.add_argument("--demo", action="store_true", help="the database of make run-demo")
    parser.add_argument("psql_args", nargs="*", help="passed to psql (after --)")
    args = parser.parse_args(argv)
    url = database_url(args.demo)
    executable = psql_executable()
    os.execv(executable, [executable, url, *args.psql_args])


if __name__ == "__main__":
    main()
