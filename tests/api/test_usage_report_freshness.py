"""How fresh spend reports are: rolled_up_at (JSON) and X-Report-Rolled-Up-At (CSV) say how far the
rollups reach, and fresh=true adds the usage after it (OpenRouter faked, real Postgres)."""

from datetime import UTC, datetime, timedelta

import pytest

from tests.helpers import ADMIN, assert_error, bearer, create_user
from tests.helpers.upstream import chat

pytestmark = pytest.mark.usefixtures("upstream")

TODAY = str(datetime.now(UTC).date())


def run_rollup(client):
    """Run usage_rollup; the watermark it moved the report rollups to."""
    run = client.post("/admin/jobs/usage_rollup/run", headers=ADMIN).get_json()
    assert run["status"] == "success", run
    return datetime.fromisoformat(run["details"]["report_days"]["rolled_up_at"])


def admin_report(client, **query):
    """GET /admin/reports/usage of today, grouped by user."""
    query = {"group_by": "user", "start_date": TODAY, **query}
    response = client.get("/admin/reports/usage", query_string=query, headers=ADMIN)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response


def traffic(client, requests=2):
    """A user who has just made ``requests`` chat completions; (user, key)."""
    user, key = create_user(client, credits="5.00", plan="team")
    for _ in range(requests):
        assert chat(client, key).status_code == 200
    return user, key


def test_a_report_right_after_traffic_is_empty_unless_fresh(client):
    run_rollup(client)
    user, key = traffic(client)
    assert admin_report(client).get_json()["groups"] == []
    [group] = admin_report(client, fresh="true").get_json()["groups"]
    assert (group["user_id"], group["requests"], group["prompt_tokens"]) == (user["id"], 2, 20)
    csv_rows = admin_report(client, format="csv").get_data(as_text=True).splitlines()
    assert len(csv_rows) == 1  # the header only
    fresh_rows = admin_report(client, format="csv", fresh="true").get_data(as_text=True).splitlines()
    assert len(fresh_rows) == 2 and fresh_rows[1].startswith(f"{user['id']},")
    own = client.get("/user/usage", query_string={"start_date": TODAY, "fresh": "true"}, headers=bearer(key))
    assert [g["requests"] for g in own.get_json()["groups"]] == [2]


def test_after_the_rollup_fresh_and_rolled_up_reports_count_each_request_once(client):
    traffic(client, requests=1)
    run_rollup(client)
    traffic(client, requests=2)
    assert [g["requests"] for g in admin_report(client).get_json()["groups"]] == [1]
    assert [g["requests"] for g in admin_report(client, fresh="true").get_json()["groups"]] == [1, 2]
    by_tag = admin_report(client, group_by="tag", fresh="true").get_json()["groups"]
    assert [(g["tag"], g["requests"]) for g in by_tag] == [(None, 3)]


def test_rolled_up_at_is_the_last_rollup_in_json_and_the_csv_header(client):
    traffic(client, requests=1)
    assert admin_report(client).get_json()["rolled_up_at"] is None
    assert "X-Report-Rolled-Up-At" not in admin_report(client, format="csv").headers
    before = datetime.now(UTC)
    watermark = run_rollup(client)
    assert before <= watermark <= datetime.now(UTC)
    assert datetime.fromisoformat(admin_report(client).get_json()["rolled_up_at"]) == watermark
    csv = admin_report(client, format="csv")
    assert datetime.fromisoformat(csv.headers["X-Report-Rolled-Up-At"]) == watermark
    assert len(csv.get_data(as_text=True).splitlines()) == 2  # rolled up: no fresh needed


def test_fresh_refuses_more_than_a_day_not_rolled_up(client):
    traffic(client, requests=1)  # never rolled up: the whole range is not
    week = str(datetime.now(UTC).date() - timedelta(days=6))
    response = client.get("/admin/reports/usage", query_string={"start_date": week, "fresh": "true"}, headers=ADMIN)
    error = assert_error(response, 400, "fresh_span_too_long")
    assert error["details"]["max_seconds"] == 86400 and error["details"]["rolled_up_at"] is None
    assert [g["requests"] for g in admin_report(client, fresh="true").get_json()["groups"]] == [1]  # today only
