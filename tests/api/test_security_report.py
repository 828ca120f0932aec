"""/admin/reports/audit: every audit and security event of a range, streamed complete as CSV or JSON."""

import csv
import io
import json

import pytest

from ops_gateway.observability import security_events
from tests.helpers import ADMIN, assert_error

RANGE = {"start_date": "2025-03-01T00:00:00Z", "end_date": "2025-03-02T00:00:00Z"}
AUDIT_ROWS, SECURITY_ROWS = 3000, 1500


@pytest.fixture
def events(sql):
    """Rows inside the range (with awkward text) and a few just outside it."""
    sql(
        "INSERT INTO api_key_audit_logs (action, actor, ip, user_agent, details, created_at)"
        " SELECT 'update', 'admin:bootstrap', '10.0.0.1', 'agent, \"quoted\"\nnewline',"
        " jsonb_build_object('n', n, 'note', 'comma, quote \" ünï'),"
        " timestamptz '2025-03-01 00:00:00Z' + n * interval '1 second' FROM generate_series(1, %s) AS n",
        (AUDIT_ROWS,),
    )
    sql(
        "INSERT INTO security_events (type, ip, details, count, created_at)"
        " SELECT 'rate_limit_exceeded', '10.0.0.2', jsonb_build_object('n', n), 2,"
        " timestamptz '2025-03-01 00:00:00Z' + n * interval '2 second' FROM generate_series(1, %s) AS n",
        (SECURITY_ROWS,),
    )
    sql(
        "INSERT INTO api_key_audit_logs (action, actor, created_at)"
        " VALUES ('update', 'x', '2025-02-28T23:59:59Z'), ('update', 'x', '2025-03-02T00:00:01Z')"
    )
    sql("INSERT INTO security_events (type, created_at) VALUES ('ip_blocked', '2025-03-03T00:00:00Z')")


def report(client, fmt):
    response = client.get("/admin/reports/audit", query_string={**RANGE, "format": fmt}, headers=ADMIN)
    assert response.status_code == 200
    assert response.is_streamed
    assert response.headers["Content-Disposition"].endswith(f'.{fmt}"')
    return response


def test_csv_report_is_complete_and_parses(client, events, monkeypatch):
    monkeypatch.setattr(security_events, "REPORT_ITERSIZE", 700)  # several server-side fetches
    response = report(client, "csv")
    assert response.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert len(rows) == AUDIT_ROWS + SECURITY_ROWS
    assert list(rows[0]) == list(security_events.REPORT_COLUMNS)
    audit = [r for r in rows if r["source"] == "audit"]
    assert sorted(json.loads(r["details"])["n"] for r in audit) == list(range(1, AUDIT_ROWS + 1))
    assert audit[0]["user_agent"] == 'agent, "quoted"\nnewline'
    assert json.loads(audit[0]["details"])["note"] == 'comma, quote " ünï'
    security = [r for r in rows if r["source"] == "security"]
    assert len(security) == SECURITY_ROWS and {r["count"] for r in security} == {"2"}
    times = [r["created_at"] for r in rows]
    assert times == sorted(times)


def test_json_report_is_one_complete_document(client, events):
    body = json.loads(report(client, "json").get_data(as_text=True))
    assert body["total_records"] == len(body["records"]) == AUDIT_ROWS + SECURITY_ROWS
    assert body["start_date"] == "2025-03-01T00:00:00+00:00"
    sources = [r["source"] for r in body["records"]]
    assert sources.count("audit") == AUDIT_ROWS and sources.count("security") == SECURITY_ROWS
    first = body["records"][0]
    assert first["details"] == {"n": 1, "note": 'comma, quote " ünï'} and first["ip"] == "10.0.0.1"


def test_empty_range_is_still_well_formed(client):
    empty = {"start_date": "2001-01-01T00:00:00Z", "end_date": "2001-01-02T00:00:00Z"}
    body = client.get("/admin/reports/audit", query_string=empty, headers=ADMIN).get_json()
    assert body["records"] == [] and body["total_records"] == 0
    text = client.get("/admin/reports/audit", query_string={**empty, "format": "csv"}, headers=ADMIN).data
    assert text.decode().strip() == ",".join(security_events.REPORT_COLUMNS)


def test_report_requires_a_valid_range(client):
    get = client.get
    assert_error(get("/admin/reports/audit", headers=ADMIN), 422, "validation_error")
    bad = {"start_date": "2025-03-02T00:00:00Z", "end_date": "2025-03-01T00:00:00Z"}
    assert_error(get("/admin/reports/audit", query_string=bad, headers=ADMIN), 400, "invalid_date_range")
    assert_error(
        get("/admin/reports/audit", query_string={**RANGE, "format": "xml"}, headers=ADMIN), 422, "validation_error"
    )


def test_report_returns_its_connection_to_the_pool(app, client, events):
    database = app.extensions["ops_gateway.db"]
    for _ in range(3):
        response = client.get("/admin/reports/audit", query_string=RANGE, headers=ADMIN)
        next(response.response)  # start streaming, then abandon the download
        response.close()
    assert database.stats()["pool_in_use"] == 0


def test_csv_report_defuses_spreadsheet_formulas(client, sql):
    formula = '=HYPERLINK("http://evil.example","x")'
    sql(
        "INSERT INTO api_key_audit_logs (action, actor, user_agent, created_at)"
        " VALUES ('update', 'admin:bootstrap', %s, '2025-03-01T12:00:00Z')",
        (formula,),
    )
    rows = list(csv.DictReader(io.StringIO(report(client, "csv").get_data(as_text=True))))
    assert [row["user_agent"] for row in rows] == ["'" + formula]
