"""A metered /v1 answer says where its time went: ``Server-Timing`` with one entry per stage."""

import re
import time

import pytest

from tests.helpers import create_user
from tests.helpers.upstream import chat

STAGES = ["parse", "auth", "admit", "upstream", "settle", "respond"]


@pytest.fixture
def key(client, upstream):
    return create_user(client, credits="1.00", plan="team")[1]


def stages_of(response):
    """[(stage, ms)] of a response's Server-Timing header."""
    entries = [entry.strip() for entry in response.headers["Server-Timing"].split(",")]
    return [
        (name, float(ms)) for name, ms in (re.fullmatch(r"(\w+);dur=([\d.]+)", entry).groups() for entry in entries)
    ]


def test_a_completion_times_each_stage_and_they_add_up_to_at_most_its_latency(client, key):
    started = time.perf_counter()
    response = chat(client, key)
    elapsed_ms = (time.perf_counter() - started) * 1000
    assert response.status_code == 200
    stages = stages_of(response)
    assert [name for name, _ in stages] == STAGES
    assert all(ms >= 0 for _, ms in stages)
    assert sum(ms for _, ms in stages) <= elapsed_ms


def test_a_stream_times_the_stages_before_its_first_event(client, key):
    response = chat(client, key, stream=True)
    assert response.status_code == 200
    assert [name for name, _ in stages_of(response)] == ["parse", "auth", "admit", "upstream", "respond"]
    response.close()


def test_a_refused_request_carries_no_stage_times(client, upstream):
    response = chat(client, "gw_live_" + "x" * 40)
    assert response.status_code == 401
    assert "Server-Timing" not in response.headers
