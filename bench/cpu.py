"""CPU time used by each process group during a measurement: a noise-resistant cost per request.

Wall-clock figures on a shared 2-core machine move with whatever else runs; the CPU seconds our
own processes burn per request move much less.
"""

from pathlib import Path

import psutil


def _tree(pid):
    """A process and all its descendants (empty when it is gone)."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _pid_file(path):
    """The pid on the first line of a pid file, or None."""
    try:
        return int(Path(path).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def process_groups(env, gateway_pid=None):
    """{name: [psutil.Process]}: the gateway (or the proxy at ``gateway_pid``), fake upstream, Postgres, Redis."""
    groups = {
        "gateway": _tree(gateway_pid or env.gateway.process.pid),
        "upstream": _tree(env.upstream.process.pid),
        "postgres": _tree(_pid_file(env.instance / "pgdata" / "postmaster.pid") or -1),
        "redis": _tree(_pid_file(env.instance / "redis" / "redis.pid") or -1),
    }
    return groups


def _cpu_seconds(processes):
    """{pid: user + system CPU seconds so far} (processes that have exited are skipped)."""
    seconds = {}
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        seconds[process.pid] = times.user + times.system
    return seconds


class CpuMeter:
    """CPU seconds per group between ``start()`` and ``stop()``.

    Process lists are read again at the end: a process born in between (a new Postgres backend)
    counts in full; one that exited in between is missed.
    """

    def __init__(self, env, gateway_pid=None):
        self.env = env
        self.gateway_pid = gateway_pid

    def start(self):
        """Remember every process's CPU seconds so far."""
        self._before = {name: _cpu_seconds(procs) for name, procs in process_groups(self.env, self.gateway_pid).items()}

    def stop(self, requests):
        """{group: CPU milliseconds per request} since ``start``."""
        used = {}
        for name, procs in process_groups(self.env, self.gateway_pid).items():
            before = self._before.get(name, {})
            now = _cpu_seconds(procs)
            used[name] = sum(seconds - before.get(pid, 0.0) for pid, seconds in now.items()) * 1000 / max(requests, 1)
        return used
