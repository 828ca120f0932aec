"""A throwaway gateway for the in-process benchmarks (reports, dashboard pages): an embedded
Postgres, migrated, and Redis in a temporary folder, and an app on them; all removed afterwards."""

import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from blueprints.app import create_app
from ops_gateway.core import embedded, migrations
from ops_gateway.core.db import Database

ADMIN_KEY = "gw_admin_bench_0123456789abcdefghijklmnop"


@contextmanager
def scratch_database(prefix):
    """(database URL, folder) of a migrated scratch Postgres; it and its Redis go on exit."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        database_url = embedded.ensure_postgres(folder)
        migrations.migrate(Database(database_url))
        yield database_url, folder
    finally:
        embedded.stop_redis(folder)
        embedded.stop_postgres(folder)
        shutil.rmtree(folder, ignore_errors=True)


def scratch_app(database_url, folder, **settings):
    """An app on the scratch database and a Redis in the same folder (quiet logs, ``ADMIN_KEY``)."""
    return create_app(
        {
            "DATABASE_URL": database_url,
            "REDIS_URL": embedded.ensure_redis(folder),
            "KEY_HASH_SECRET": "bench-secret",
            "ADMIN_API_KEY": ADMIN_KEY,
            "INSTANCE_PATH": str(folder),
            "LOG_LEVEL": "error",
            **settings,
        }
    )
