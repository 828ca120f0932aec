"""The dashboard's request log: the page lists settled /v1 requests, each filter narrows it, pages
follow the cursor, one entry in full, bad filters as a 400 page, and only admins see any of it."""

import re
from datetime import UTC, datetime, timedelta

import pytest

from blueprints import dashboard_requests
from tests.helpers import ADMIN, bearer, create_user
from tests.helpers.dashboard import sign_in
from tests.helpers.request_log import make_traffic, send

DETAIL_LINK = re.compile(r'href="/dashboard/requests/([^"?/]+)"')


def listed(client, **query):
    """The request ids the page lists for ``query``, in order."""
    response = client.get("/dashboard/requests", query_string=query)
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    return DETAIL_LINK.findall(response.get_data(as_text=True))


def utc_field(moment):
    """A datetime as the form's datetime-local input sends it (UTC, no offset)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


@pytest.fixture
def traffic(client, upstream):
    """The shared mix of requests (tests/helpers/request_log.py), seen by a signed-in admin."""
    made = make_traffic(client, upstream)
    sign_in(client)
    return made


def test_the_page_lists_requests_newest_first_with_who_and_how(client, traffic):
    response = client.get("/dashboard/requests")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert DETAIL_LINK.findall(page) == ["b-2", "c-1", "b-1", "a-3", "a-2", "a-1"]
    assert f'href="/dashboard/users/{traffic["alice"]["id"]}"' in page
    assert f'href="/dashboard/orgs/{traffic["org"]["id"]}"' in page
    assert "gw_live_" in page and "…" in page  # masked keys, never whole ones
    assert "$0.0000135" in page and 'class="pill error"' in page
    assert 'id="nav-requests"' in page


def test_each_filter_narrows_the_page(client, traffic):
    soon, earlier = datetime.now(UTC) + timedelta(hours=1), datetime.now(UTC) - timedelta(hours=1)
    assert listed(client, user_id=traffic["alice"]["id"]) == ["a-3", "a-2", "a-1"]
    assert listed(client, org_id=traffic["org"]["id"]) == ["c-1"]
    assert listed(client, key_id=traffic["extra"]["id"]) == ["a-2"]
    assert listed(client, model="test/free-model") == ["a-3"]
    assert listed(client, endpoint="embeddings") == []
    assert listed(client, status="error") == ["b-2"]
    assert listed(client, tag="team-b") == ["b-1"]
    assert listed(client, ip="198.51.100.4") == ["a-2"]
    assert listed(client, min_latency_ms="1000000") == []
    assert listed(client, start_date=utc_field(soon)) == []
    assert listed(client, end_date=utc_field(earlier)) == []
    assert listed(client, start_date=utc_field(earlier), end_date=utc_field(soon), tag="team-a") == ["a-1"]


def test_a_submitted_form_with_blank_fields_filters_nothing(client, traffic):
    blank = {name: "" for name, _ in dashboard_requests.FILTER_FIELDS}
    assert listed(client, **blank) == ["b-2", "c-1", "b-1", "a-3", "a-2", "a-1"]
    page = client.get("/dashboard/requests", query_string={**blank, "status": "error"}).get_data(as_text=True)
    assert '<option value="error" selected' in page


def test_pages_follow_the_older_link_and_keep_the_filters(client, traffic, monkeypatch):
    monkeypatch.setattr(dashboard_requests, "PAGE_SIZE", 2)
    seen, query = [], {"user_id": traffic["alice"]["id"]}
    while True:
        page = client.get("/dashboard/requests", query_string=query).get_data(as_text=True)
        seen += DETAIL_LINK.findall(page)
        older = re.search(r'href="/dashboard/requests\?([^"]+)">Older', page)
        if not older:
            break
        query = dict(pair.split("=", 1) for pair in older.group(1).replace("&amp;", "&").split("&"))
        assert query["user_id"] == str(traffic["alice"]["id"])
    assert seen == ["a-3", "a-2", "a-1"]


def test_the_detail_page_shows_every_recorded_field(client, traffic):
    page = client.get("/dashboard/requests/a-2").get_data(as_text=True)
    assert "198.51.100.4" in page and f"id {traffic['extra']['id']}" in page
    assert f'href="/dashboard/users/{traffic["alice"]["id"]}/keys/{traffic["extra"]["id"]}"' in page
    assert '<dd id="request-upstream-cost">not reported</dd>' in page  # the mock reports no usage.cost
    assert '<dd id="request-cost">$0.0000135</dd>' in page
    assert "Not kept: payload logging is off" in page
    failed = client.get("/dashboard/requests/b-2").get_data(as_text=True)
    assert '<dd id="request-upstream-status">500</dd>' in failed
    tagged = client.get("/dashboard/requests/b-1").get_data(as_text=True)
    assert '<dd id="request-tags">team-b</dd>' in tagged
    org = client.get("/dashboard/requests/c-1").get_data(as_text=True)
    assert f'href="/dashboard/orgs/{traffic["org"]["id"]}"' in org


def test_a_reused_request_id_shows_the_newest_and_how_many(client, upstream):
    _, key = create_user(client, credits="1.00", plan="team")
    for tags in ("first", "second"):
        assert send(client, key, "same-id", tags=tags).status_code == 200
    sign_in(client)
    page = client.get("/dashboard/requests/same-id").get_data(as_text=True)
    assert '<dd id="request-tags">second</dd>' in page and 'id="same-request-id">2 requests' in page


def test_an_unknown_request_id_is_a_404_page(client):
    sign_in(client)
    response = client.get("/dashboard/requests/no-such-request")
    assert response.status_code == 404 and "request not found" in response.get_data(as_text=True)


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        ({"user_id": "abc"}, "User id: Not a valid integer."),
        ({"status": "weird"}, "Status: Must be one of"),
        ({"endpoint": "x"}, "Endpoint: Must be one of"),
        ({"ip": "nope"}, "IP address: not an IP address"),
        ({"min_latency_ms": "-1"}, "Min latency ms:"),
        ({"min_latency_ms": "nan"}, "Min latency ms:"),
        ({"start_date": "yesterday"}, "start_date must be an ISO 8601 timestamp"),
        ({"start_date": "2026-02-01T00:00", "end_date": "2026-01-01T00:00"}, "start_date is after end_date"),
        ({"cursor": "xyz"}, "cursor was not returned by this endpoint"),
    ],
)
def test_a_bad_filter_is_named_on_a_400_page(client, query, problem):
    sign_in(client)
    response = client.get("/dashboard/requests", query_string=query)
    page = response.get_data(as_text=True)
    assert response.status_code == 400 and 'id="request-filters"' in page
    assert problem in page.replace("&#39;", "'"), page[page.find("filter-problem") :][:300]


def test_only_a_signed_in_admin_sees_the_log(app, traffic):
    stranger = app.test_client()
    for path in ("/dashboard/requests", "/dashboard/requests/a-1"):
        response = stranger.get(path)
        assert response.status_code == 302 and "/dashboard/login" in response.headers["Location"]
    _, key = create_user(stranger)
    assert sign_in(stranger, key).status_code == 403  # a valid key, but not an admin's
    assert stranger.get("/dashboard/requests/a-1").status_code == 302


def test_the_user_page_links_to_the_users_requests(client, traffic):
    page = client.get(f"/dashboard/users/{traffic['alice']['id']}").get_data(as_text=True)
    assert f'href="/dashboard/requests?user_id={traffic["alice"]["id"]}" id="user-requests"' in page


def test_the_overview_shows_the_response_caches_hit_rate_over_the_last_hour(client, sql):
    sql(
        "INSERT INTO usage_records (request_id, user_id, model, status, latency_ms, cache_hit, created_at)"
        " SELECT 'r' || i, 1, 'm', 'success', 5, i <= 1, now() - interval '1 minute' FROM generate_series(1, 4) AS i"
    )
    sql(
        "INSERT INTO usage_records (request_id, user_id, model, status, latency_ms, cache_hit, created_at)"
        " VALUES ('old', 1, 'm', 'success', 5, true, now() - interval '2 hours')"
    )
    sign_in(client)
    page = client.get("/dashboard/").get_data(as_text=True)
    assert '<div class="value" id="kpi-cache-hit-rate">25.0%</div>' in page
    assert "1 of 4 requests, last hour" in page


def test_the_detail_shows_logged_payloads_redacted(client, upstream, sql):
    user, key = create_user(client, credits="1.00", plan="team")
    assert client.patch(f"/admin/users/{user['id']}", json={"log_payloads": True}, headers=ADMIN).status_code == 200
    body = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": f"key {key}"}], "max_tokens": 5}
    headers = {**bearer(key), "X-Request-ID": "with-payloads"}
    assert client.post("/v1/chat/completions", json=body, headers=headers).status_code == 200
    sign_in(client)
    page = client.get("/dashboard/requests/with-payloads").get_data(as_text=True)
    assert 'id="payload-request"' in page and "[REDACTED]" in page and key not in page
