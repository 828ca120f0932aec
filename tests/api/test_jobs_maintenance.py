"""db_maintenance: pool health, slow queries, index findings and ANALYZE, on real Postgres."""

import psycopg2
import pytest

from ops_gateway.maintenance import db_maintenance
from tests.helpers import ADMIN, holding_lock


def run_maintenance(client):
    response = client.post("/admin/jobs/db_maintenance/run", headers=ADMIN)
    assert response.status_code == 200 and response.get_json()["status"] == "success", response.get_json()
    return response.get_json()["details"]


def test_pool_health_is_reported(client):
    pool = run_maintenance(client)["pool"]
    assert pool["probe_ms"] >= 0
    assert pool["process_pool"]["pool_max"] == 12
    assert 0 < pool["server"]["total"] <= pool["server"]["max_connections"]
    assert pool["server"]["saturation_percent"] > 0


def test_slow_queries_fall_back_to_running_statements_without_pg_stat_statements(client, sql):
    slow = run_maintenance(client)["slow_queries"]
    assert slow["source"] == "pg_stat_activity" and slow["note"] == "pg_stat_statements is not installed"
    assert slow["threshold_ms"] == 200 and slow["queries"] == []


def test_unindexed_foreign_keys_invalid_and_unused_indexes_are_found(client, sql):
    sql("CREATE TABLE key_notes (id bigserial PRIMARY KEY, api_key_id bigint REFERENCES api_keys (id), note text)")
    sql("CREATE INDEX key_notes_note_idx ON key_notes (note)")
    sql("INSERT INTO key_notes (note) VALUES ('same'), ('same')")
    with pytest.raises(psycopg2.errors.UniqueViolation):
        sql("CREATE UNIQUE INDEX CONCURRENTLY key_notes_note_key ON key_notes (note)")  # leaves an invalid index
    details = run_maintenance(client)
    indexes = details["indexes"]
    assert {"table": "key_notes", "constraint": "key_notes_api_key_id_fkey", "columns": ["api_key_id"]} in indexes[
        "unindexed_foreign_keys"
    ]
    # Foreign keys led by an index (credit_transactions.user_id, ...) are not reported.
    assert "credit_transactions" not in {fk["table"] for fk in indexes["unindexed_foreign_keys"]}
    assert {"index": "key_notes_note_key", "table": "key_notes"} in indexes["invalid"]
    assert "key_notes_note_idx" in {index["index"] for index in indexes["unused"]}
    assert details["problems"] >= 2


def test_partitioned_indexes_count_their_partitions_scans(client, sql):
    sql("SET enable_seqscan = off")
    sql("SELECT * FROM usage_records WHERE request_id = 'x'")  # scans usage_records_request_idx's partitions
    sql("SELECT pg_stat_force_next_flush()")  # backends publish their statistics lazily
    sql("SELECT 1")
    unused = {index["index"] for index in run_maintenance(client)["indexes"]["unused"]}
    assert "usage_records_request_idx" not in unused
    assert "usage_records_user_time_idx" in unused


def test_hot_tables_are_analyzed(client, sql):
    details = run_maintenance(client)
    assert {"users", "usage_records", "api_key_audit_logs"} <= set(details["analyzed"])
    assert details["analyze_deferred"] == []
    analyzed = sql("SELECT relname FROM pg_stat_user_tables WHERE last_analyze IS NOT NULL")
    assert {"users", "api_keys", "credit_transactions"} <= {row["relname"] for row in analyzed}


def test_a_table_in_use_is_not_waited_for_but_its_analyze_deferred(client, database_url, monkeypatch):
    monkeypatch.setattr(db_maintenance, "LOCK_TIMEOUT", "100ms")  # give up on the lock quickly
    with holding_lock(database_url, "users", "SHARE UPDATE EXCLUSIVE"):  # as a VACUUM of it would
        details = run_maintenance(client)
    assert details["analyze_deferred"] == ["users"]
    assert "users" not in details["analyzed"] and "api_keys" in details["analyzed"]
