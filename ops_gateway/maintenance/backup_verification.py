"""Backup verification: take (or find) the newest dump, prove it restores, alert when it does not.

BACKUP_MODE=dump takes a dump first; BACKUP_MODE=verify only checks the newest ``*.dump`` that
something else wrote to BACKUP_DIR. A dump with a manifest must restore to exactly the counts
recorded when it was taken. A file without one is compared with the live database, which has
moved on since: there only a key table that restores empty while the live one is not fails.
"""

from datetime import UTC, datetime
from pathlib import Path

from flask import current_app

from ops_gateway.core import db
from ops_gateway.maintenance import backup
from ops_gateway.telemetry import alerts

FAILED_RULE = "backup_verification_failed"
STALE_RULE = "backup_stale"


def _mismatches(expected, restored, exact):
    """Key tables whose restored count is wrong: (table, expected, restored)."""
    wrong = []
    for table in backup.KEY_TABLES:
        want, got = expected.get(table), restored.get(table)
        if (exact and want != got) or (not exact and want and not got):
            wrong.append((table, want, got))
    return wrong


def _check_age(dump_path, max_age_hours):
    """Fire or resolve the staleness alert; return the newest dump's age in hours."""
    written = datetime.fromtimestamp(dump_path.stat().st_mtime, UTC)
    age_hours = (datetime.now(UTC) - written).total_seconds() / 3600
    if age_hours > max_age_hours:
        alerts.fire_alert(
            STALE_RULE,
            f"newest backup {dump_path.name} is {age_hours:.1f} h old",
            severity="critical",
            value=round(age_hours, 2),
            threshold=max_age_hours,
            details={"file": dump_path.name},
        )
    else:
        alerts.resolve_alert(STALE_RULE)
    return round(age_hours, 3)


def _verify(backup_dir, config):
    database = db.get_database()
    backup_dir.mkdir(parents=True, exist_ok=True)
    details = {"mode": config["BACKUP_MODE"], "backup_dir": str(backup_dir)}
    details["stale_scratch_dropped"] = backup.drop_stale_scratch_databases(database)
    if config["BACKUP_MODE"] == "dump":
        details["dump"] = backup.take_dump(database, backup_dir)
    newest = backup.newest_dump(backup_dir)
    if newest is None:
        raise backup.BackupError(f"no *.dump file in {backup_dir}")
    details["file"] = newest.name
    details["age_hours"] = _check_age(newest, config["BACKUP_MAX_AGE_HOURS"])
    manifest = backup.read_manifest(newest)
    if manifest is not None:
        expected, details["compared_with"] = manifest["counts"], "manifest"
    else:
        with db.transaction() as cur:
            db.set_local(cur, "statement_timeout", 0)
            expected, details["compared_with"] = backup.count_rows(cur), "live database"
    restored = backup.restore_and_count(database, newest)
    details.update(expected_counts=expected, restored_counts=restored["counts"], scratch=restored["scratch_database"])
    wrong = _mismatches(expected, restored["counts"], exact=manifest is not None)
    if wrong:
        listed = ", ".join(f"{table} expected {want} restored {got}" for table, want, got in wrong)
        raise backup.BackupError(f"{newest.name} restored with wrong row counts: {listed}")
    details["pruned"] = backup.prune(backup_dir, config["BACKUP_KEEP"])
    return details


def verify_backups():
    """The backup_verification job body: verify, record details, alert on failure or staleness."""
    config = current_app.config
    try:
        details = _verify(Path(config["BACKUP_DIR"]), config)
    except Exception as exc:
        alerts.fire_alert(
            FAILED_RULE,
            f"backup verification failed: {exc}"[:500],
            severity="critical",
            details={"backup_dir": config["BACKUP_DIR"], "error": exc.__class__.__name__},
        )
        raise
    alerts.resolve_alert(FAILED_RULE)
    return details
