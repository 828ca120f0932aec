"""Real Debian ``redis-server`` processes for the tests: a 3-node Redis Cluster (plain or TLS) and
a single server that can be restarted (no persistence, as a managed Redis that loses its data)."""

import shutil
import subprocess
import time

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.certificates import self_signed_certificate
from tests.e2e.servers import free_port, stop_processes

SLOTS = 16384


def _start_node(directory, port, *extra, tls=None):
    """One redis-server on 127.0.0.1:``port`` with its files in ``directory``; its Popen."""
    process = _spawn_node(directory, port, *extra, tls=tls)
    _wait_until_up(process, port, tls)
    return process


def _spawn_node(directory, port, *extra, tls=None):
    """Start one redis-server without waiting for it; its Popen.

    With ``tls`` (a ``TlsFiles``) the port is a TLS port and the plain one is off (``port 0``).
    """
    directory.mkdir(parents=True, exist_ok=True)
    listen = ["--port", "0", "--tls-port", str(port), *tls.server_args()] if tls else ["--port", str(port)]
    args = ["redis-server", *listen, "--bind", "127.0.0.1", "--dir", str(directory)]
    args += ["--save", "", "--appendonly", "no", "--daemonize", "no", *extra]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _wait_until_up(process, port, tls=None):
    """Poll the node until it answers PING (killing it if it never does)."""
    # No retries inside redis-py: its backoff would stretch each refused probe to a second or so.
    client = _client(port, tls, socket_timeout=1, retry=Retry(NoBackoff(), 0))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and process.poll() is None:
        try:
            client.ping()
            return
        except redis.ConnectionError:
            time.sleep(0.02)
    stop_processes([process])
    raise RuntimeError(f"redis-server on port {port} did not start")


def _client(port, tls=None, **options):
    """A single-node client of 127.0.0.1:``port``, over TLS (checking the test CA) with ``tls``."""
    if tls:
        options.update(ssl=True, ssl_ca_certs=str(tls.cert))
    return redis.Redis(host="127.0.0.1", port=port, **options)


class TlsFiles:
    """A self-signed certificate that is also the CA every node and client trusts."""

    def __init__(self, directory):
        self.cert, self.key = self_signed_certificate(directory)

    def server_args(self):
        """redis-server's TLS options: this certificate, no client certificates asked for."""
        return [
            *("--tls-cert-file", str(self.cert), "--tls-key-file", str(self.key)),
            *("--tls-ca-cert-file", str(self.cert), "--tls-auth-clients", "no"),
        ]


class RedisCluster:
    """Three primaries, no replicas, every slot covered.

    With ``tls=True`` the nodes serve TLS only (``port 0``), the cluster bus and replication run
    over TLS too, as a managed Redis Cluster is served; ``tls.cert`` is the CA to trust and ``url``
    the gateway's ``rediss+cluster://`` URL naming one node (the client finds the others).
    """

    def __init__(self, directory, nodes=3, tls=False):
        self.ports = [free_port() for _ in range(nodes)]
        self.processes = []
        self.tls = TlsFiles(directory / "tls") if tls else None
        enabled = ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
        if tls:
            enabled += ["--tls-cluster", "yes", "--tls-replication", "yes"]
        # The bus port must be free too (its default, port + 10000, may not even exist).
        buses = [free_port() for _ in self.ports]
        try:
            for port, bus in zip(self.ports, buses, strict=True):
                node = _spawn_node(directory / str(port), port, *enabled, "--cluster-port", str(bus), tls=self.tls)
                self.processes.append(node)
            for process, port in zip(self.processes, self.ports, strict=True):
                _wait_until_up(process, port, self.tls)
            self._assign_slots_and_meet(buses)
            self._wait_until_ok()
        except BaseException:
            self.stop()
            raise
        hosts = [f"127.0.0.1:{port}" for port in self.ports]
        if tls:
            self.url = f"rediss+cluster://{hosts[0]}"
        else:
            self.url = "redis://" + ",".join(hosts)  # hosts comma-separated: the gateway's cluster syntax

    def _assign_slots_and_meet(self, buses):
        """An equal range of the 16384 slots to each node, then the first node meets the others
        (what ``redis-cli --cluster create`` does, without its one-second polls)."""
        count = len(self.ports)
        for i, port in enumerate(self.ports):
            self.client(port).execute_command(
                "CLUSTER", "ADDSLOTSRANGE", i * SLOTS // count, (i + 1) * SLOTS // count - 1
            )
        first = self.client(self.ports[0])
        for port, bus in zip(self.ports[1:], buses[1:], strict=True):
            first.execute_command("CLUSTER", "MEET", "127.0.0.1", port, bus)

    def client(self, port):
        """A single-node client of one node (TLS when the cluster is)."""
        return _client(port, self.tls, decode_responses=True)

    def _wait_until_ok(self):
        """Every node agrees the cluster is up."""
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            states = [self.client(port).cluster("info")["cluster_state"] for port in self.ports]
            if states == ["ok"] * len(self.ports):
                return
            time.sleep(0.1)
        raise RuntimeError(f"cluster not ok: {states}")

    def stop(self):
        """Stop every node."""
        stop_processes(self.processes)


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
        stop_processes([self.process])
        self.process = _start_node(self.directory, self.port)

    def stop(self):
        """Stop the server and remove its directory."""
        stop_processes([self.process])
        shutil.rmtree(self.directory, ignore_errors=True)
