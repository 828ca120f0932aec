"""The fake OpenRouter as benchmarks start it: several processes on one port with one set of switches."""

import time

import psutil
import requests

from ops_gateway.upstream.fake_openrouter import RECHECK_SECONDS
from tests.e2e.servers import start_fake_openrouter


def test_worker_processes_share_the_port_and_the_switches_and_stop_together(tmp_path):
    server = start_fake_openrouter(tmp_path, workers=2)
    try:
        parent = psutil.Process(server.process.pid)
        processes = [parent, *parent.children(recursive=True)]
        assert len(processes) == 2
        # A new connection each time: the kernel hands them to either process.
        pids = {requests.get(f"{server.url}/_stats", timeout=5).json()["pid"] for _ in range(40)}
        assert pids == {process.pid for process in processes}
        requests.post(f"{server.url}/_control", json={"outage": True}, timeout=5).raise_for_status()
        time.sleep(RECHECK_SECONDS + 0.1)
        statuses = {requests.get(f"{server.base_url}/models", timeout=5).status_code for _ in range(20)}
        assert statuses == {503}
    finally:
        server.stop()
    assert not any(process.is_running() for process in processes)


def test_worker_processes_exit_when_the_parent_is_killed(tmp_path):
    server = start_fake_openrouter(tmp_path, workers=3)
    children = psutil.Process(server.process.pid).children()
    assert len(children) == 2
    server.process.kill()
    server.stop()
    _, alive = psutil.wait_procs(children, timeout=5)
    assert not alive
