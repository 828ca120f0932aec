"""Real Debian ``redis-server`` processes for the tests: a 3-node Redis Cluster and a single
server that can be restarted (no persistence, as a managed Redis that loses its data)."""

import shutil
import subprocess
import time

import redis

from tests.e2e.servers import free_port


def _start_node(directory, port, *extra):
    """One redis-server on 127.0.0.1:``port`` with its files in ``directory``; its Popen."""
    directory.mkdir(parents=True, exist_ok=True)
    args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory)]
    args += ["--save", "", "--appendonly", "no", "--daemonize", "no", *extra]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(port=port, socket_timeout=1)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            client.ping()
            return process
        except redis.ConnectionError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"redis-server on port {port} did not start")


def _stop(processes):
    """Terminate and reap every process."""
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class RedisCluster:
    """Three primaries, no replicas, every slot covered (``redis-cli --cluster create``)."""

    def __init__(self, directory, nodes=3):
        self.ports = [free_port() for _ in range(nodes)]
        self.processes = []
        try:
            for port in self.ports:
                # The bus port must be free too (its default, port + 10000, may not even exist).
                bus = ["--cluster-port", str(free_port()), "--cluster-config-file", "nodes.conf"]
                self.processes.append(_start_node(directory / str(port), port, "--cluster-enabled", "yes", *bus))
            hosts = [f"127.0.0.1:{port}" for port in self.ports]
            subprocess.run(
                ["redis-cli", "--cluster", "create", *hosts, "--cluster-replicas", "0", "--cluster-yes"],
                check=True,
                capture_output=True,
                timeout=30,
            )
            self._wait_until_ok()
        except BaseException:
            self.stop()
            raise
        self.url = "redis://" + ",".join(hosts)  # hosts comma-separated: the gateway's cluster syntax

    def _wait_until_ok(self):
        """Every node agrees the cluster is up."""
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            states = [redis.Redis(port=port).cluster("info")["cluster_state"] for port in self.ports]
            if states == ["ok"] * len(self.ports):
                return
            time.sleep(0.1)
        raise RuntimeError(f"cluster not ok: {states}")

    def stop(self):
        """Stop every node."""
        _stop(self.processes)


class RestartableRedis:
    """One redis-server without persistence: a restart comes back empty."""

    def __init__(self, directory):
        self.directory = directory
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = _start_node(directory, self.port)

    def flushall(self):
        """Drop every key, as FLUSHALL does."""
        redis.Redis(port=self.port).flushall()

    def restart(self):
        """Stop the server and start it again on the same port, with nothing in it."""
        _stop([self.process])
        self.process = _start_node(self.directory, self.port)

    def stop(self):
        """Stop the server and remove its directory."""
        _stop([self.process])
        shutil.rmtree(self.directory, ignore_errors=True)
