"""Logical backups: pg_dump (custom format) to a directory, restore into a scratch database, row counts.

A dump is taken from an exported snapshot and the key tables are counted in that same snapshot,
so the counts written beside the file (``<file>.json``) are exactly what a restore must give back
however busy the database is. The password travels in PGPASSWORD, never on a command line.
"""

import json
import os
import re
import shutil
import subprocess
import time
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path

import psycopg2
import psycopg2.extras
from psycopg2.extensions import make_dsn, parse_dsn

from ops_gateway.core import db
from ops_gateway.maintenance import queries

KEY_TABLES = ("users", "api_keys", "credit_transactions", "usage_records", "api_key_audit_logs")
COMMAND_TIMEOUT_SECONDS = 3600
SCRATCH_MARKER = "_verify_"


class BackupError(RuntimeError):
    """A dump, restore or check could not be completed."""


def _major_version(binary):
    # "pg_dump (PostgreSQL) 16.2" or "pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"
    output = subprocess.run([str(binary), "--version"], capture_output=True, text=True, check=True).stdout
    return int(re.search(r"PostgreSQL\)\s+(\d+)", output).group(1))


def _tool_dirs():
    found = shutil.which("pg_dump")
    if found:
        yield Path(found).parent
    try:
        import pgserver
    except ImportError:
        return
    yield Path(pgserver.__file__).parent / "pginstall" / "bin"


@lru_cache
def pg_tools(server_major):
    """The directory of a pg_dump/pg_restore pair new enough for this server (PATH first, then pgserver's)."""
    for directory in _tool_dirs():
        if (directory / "pg_restore").exists() and _major_version(directory / "pg_dump") >= server_major:
            return directory
    raise BackupError(f"no pg_dump/pg_restore of PostgreSQL {server_major} or newer found")


def libpq_target(url, dbname=None):
    """(conninfo without the password, environment carrying it) for the command-line tools."""
    params = parse_dsn(url)
    if dbname:
        params["dbname"] = dbname
    password = params.pop("password", None)
    env = {**os.environ, "PGCONNECT_TIMEOUT": "10"}
    if password:
        env["PGPASSWORD"] = password
    return make_dsn(**params), env


def _run(command, env):
    result = subprocess.run(
        [str(part) for part in command], env=env, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_SECONDS
    )
    if result.returncode != 0:
        raise BackupError(f"{Path(command[0]).name} failed: {result.stderr.strip()[-500:]}")


def count_rows(cur):
    """Row counts of KEY_TABLES through the given cursor."""
    return queries.count_rows(cur, KEY_TABLES)


def take_dump(database, backup_dir):
    """Dump the database into ``backup_dir`` with its manifest; return the manifest."""
    conn = database.connect()
    try:
        conn.set_session(isolation_level="REPEATABLE READ")
        with conn.cursor() as cur:
            db.set_local(cur, "statement_timeout", 0)  # counting a big table may take a while
            exported = queries.export_snapshot(cur)
            counts = count_rows(cur)
            tools = pg_tools(queries.server_major(cur))
            taken_at = datetime.now(UTC)
            path = backup_dir / f"{exported['db']}-{taken_at:%Y%m%dT%H%M%SZ}.dump"
            partial = path.with_suffix(".partial")  # never the newest *.dump while half-written
            conninfo, env = libpq_target(database.url)
            try:
                _run(
                    [tools / "pg_dump", "--format=custom", f"--snapshot={exported['snapshot']}", "--file", partial]
                    + ["--dbname", conninfo],
                    env,
                )
            except (BackupError, subprocess.TimeoutExpired):
                partial.unlink(missing_ok=True)
                raise
        conn.commit()
    finally:
        conn.close()
    manifest = {"file": path.name, "database": exported["db"], "taken_at": taken_at.isoformat(), "counts": counts}
    manifest_path(path).write_text(json.dumps(manifest, indent=2))  # first: a dump never lacks its counts
    partial.rename(path)
    manifest["bytes"] = path.stat().st_size
    return manifest


def manifest_path(dump_path):
    """Where a dump's manifest lives."""
    return dump_path.with_name(dump_path.name + ".json")


def read_manifest(dump_path):
    """The manifest written with a dump, or None for a file made elsewhere."""
    path = manifest_path(dump_path)
    return json.loads(path.read_text()) if path.exists() else None


def newest_dump(backup_dir):
    """The most recently written ``*.dump`` in the directory, or None."""
    dumps = list(backup_dir.glob("*.dump"))
    return max(dumps, key=lambda p: p.stat().st_mtime) if dumps else None


def prune(backup_dir, keep):
    """Delete all but the newest ``keep`` dumps (0 keeps all); return the names removed."""
    if keep <= 0:
        return []
    dumps = sorted(backup_dir.glob("*.dump"), key=lambda p: p.stat().st_mtime, reverse=True)
    removed = []
    for path in dumps[keep:]:
        manifest_path(path).unlink(missing_ok=True)
        path.unlink()
        removed.append(path.name)
    return removed


@contextmanager
def _autocommit_cursor(connect):
    conn = connect()
    try:
        conn.autocommit = True  # CREATE/DROP DATABASE cannot run inside a transaction
        with conn.cursor() as cur:
            cur.execute("SET statement_timeout = 0")  # copying or counting a big database takes a while
            yield cur
    finally:
        conn.close()


def _drop_database(database, name):
    with _autocommit_cursor(database.connect) as cur:
        queries.drop_database(cur, name)


def drop_stale_scratch_databases(database):
    """Drop scratch databases a crashed verification left behind; return their names."""
    with _autocommit_cursor(database.connect) as cur:
        prefix = queries.current_database(cur)[:40] + SCRATCH_MARKER
        names = queries.databases_named_like(cur, prefix)
    for name in names:
        _drop_database(database, name)
    return names


def restore_and_count(database, dump_path):
    """Restore the dump into a fresh scratch database, count KEY_TABLES there, drop it; return the counts."""
    scratch = f"{parse_dsn(database.url)['dbname'][:40]}{SCRATCH_MARKER}{int(time.time())}"
    with _autocommit_cursor(database.connect) as cur:
        tools = pg_tools(queries.server_major(cur))
        # template0: nobody is ever connected to it, so CREATE DATABASE cannot collide with a session.
        queries.create_database_from_template0(cur, scratch)
    try:
        conninfo, env = libpq_target(database.url, scratch)
        _run(
            [tools / "pg_restore", "--no-owner", "--no-privileges", "--exit-on-error"]
            + ["--dbname", conninfo, dump_path],
            env,
        )
        scratch_url = make_dsn(database.url, dbname=scratch)
        with _autocommit_cursor(
            lambda: psycopg2.connect(scratch_url, cursor_factory=psycopg2.extras.RealDictCursor)
        ) as cur:
            counts = count_rows(cur)
    finally:
        _drop_database(database, scratch)
    return {"scratch_database": scratch, "counts": counts}
