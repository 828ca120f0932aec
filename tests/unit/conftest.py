"""Fixtures of the unit tests: the fake OpenRouter served from a thread, or answering in-process.

Unit tests start no database or Redis, so here ``client`` is a client of a served fake OpenRouter,
not the Flask test client of tests/conftest.py.
"""

import threading

import pytest

from devtools.fake_openrouter import FakeOpenRouter, FakeOpenRouterServer
from tests.helpers.fake_openrouter import Client


@pytest.fixture
def state_file(tmp_path):
    """A fault-switch file private to the test."""
    return tmp_path / "faults.json"


@pytest.fixture
def serve_fake():
    """Start fakes on free ports, each serving from a thread; all are stopped after the test."""
    servers = []

    def start(state_file):
        server = FakeOpenRouterServer(("127.0.0.1", 0), FakeOpenRouter(state_file))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return Client(server.server_address[1])

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def client(serve_fake, state_file):
    """A client of a fake whose faults live in the test's own file."""
    return serve_fake(state_file)


@pytest.fixture
def fake(state_file):
    """A fake answering in-process, without a server."""
    return FakeOpenRouter(state_file)
