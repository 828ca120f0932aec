"""The dashboard's IP blocks page over the test client: the blocks in force, and lifting one."""

from tests.helpers import ADMIN
from tests.helpers.dashboard import csrf_of, post_confirmed, sign_in


def block(client, ip):
    response = client.post("/admin/blocked-ips", json={"ip": ip, "ttl_seconds": 600, "reason": "test"}, headers=ADMIN)
    assert response.status_code == 201, response.get_json()


def unblock_events(sql):
    return sql("SELECT host(ip) AS ip, details FROM security_events WHERE type = 'ip_unblocked' ORDER BY id")


def test_the_page_lists_the_same_blocks_as_the_api_and_is_in_the_navigation(client):
    block(client, "203.0.113.9")
    block(client, "2001:db8::1")
    sign_in(client)
    page = client.get("/dashboard/ip-blocks").get_data(as_text=True)
    listed = [row["address"] for row in client.get("/admin/blocked-ips", headers=ADMIN).get_json()["blocks"]]
    assert [ip for ip in listed if ip in page] == listed == ["2001:db8::1", "203.0.113.9"]
    assert 'id="nav-ip-blocks"' in client.get("/dashboard/").get_data(as_text=True)


def test_lift_a_block_after_confirming_names_the_admin(client, sql):
    block(client, "203.0.113.9")
    sign_in(client)
    token = csrf_of(client, "/dashboard/ip-blocks")
    response = post_confirmed(client, "/dashboard/ip-blocks/lift", {"ip": "203.0.113.9"}, token)
    assert response.status_code == 302
    assert client.get("/admin/blocked-ips", headers=ADMIN).get_json() == {"blocks": []}
    (event,) = unblock_events(sql)
    assert event["ip"] == "203.0.113.9" and event["details"]["actor"] == "admin:bootstrap"


def test_lift_refuses_bad_input_an_unblocked_address_and_a_forged_form(client, sql):
    block(client, "203.0.113.9")
    sign_in(client)
    token = csrf_of(client, "/dashboard/ip-blocks")
    invalid = client.post("/dashboard/ip-blocks/lift", data={"ip": "not-an-ip", "csrf_token": token})
    assert invalid.status_code == 400 and "not an IPv4 or IPv6 address" in invalid.get_data(as_text=True)
    missing = client.post(
        "/dashboard/ip-blocks/lift", data={"ip": "198.51.100.1", "csrf_token": token, "confirmed": "yes"}
    )
    assert missing.status_code == 404
    forged = client.post("/dashboard/ip-blocks/lift", data={"ip": "203.0.113.9", "confirmed": "yes"})
    assert forged.status_code == 400
    assert len(client.get("/admin/blocked-ips", headers=ADMIN).get_json()["blocks"]) == 1
    assert unblock_events(sql) == []
