"""The overview's totals from the 5-minute series: which bucket the p95 card reads."""

from ops_gateway.dashboard.series import summarise


def point(requests, p95_ms):
    """One bucket with ``requests`` successes and that p95 (None: no traffic)."""
    return {"requests": requests, "errors": 0, "tokens": 0, "cost": 0, "p95_ms": p95_ms}


def test_p95_is_the_newest_closed_bucket_with_traffic_not_the_one_still_filling():
    totals = summarise([point(3, 250.0), point(0, None), point(1, 40.0)])
    assert (totals["p95_ms"], totals["p95_partial"]) == (250.0, False)


def test_p95_falls_back_to_the_open_bucket_while_it_alone_has_traffic():
    totals = summarise([point(0, None), point(0, None), point(2, 120.0)])
    assert (totals["p95_ms"], totals["p95_partial"]) == (120.0, True)
    assert totals["requests"] == 2
