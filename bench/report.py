"""The machine a run happened on, and the record of each run: one file in bench/results/ per run."""

import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import psycopg2
import redis

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


def _cpu_model():
    """The CPU model name from /proc/cpuinfo."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _memory_gib():
    """Total memory from /proc/meminfo, in GiB."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.0f} GiB"
    except OSError:
        pass
    return "unknown"


def _git_revision():
    """The checked-out commit, noting uncommitted changes."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True)
    except OSError:
        return "unknown"
    if not head.stdout.strip():
        return "unknown (not a git checkout)"
    return head.stdout.strip() + (" + uncommitted changes" if dirty.stdout.strip() else "")


def machine(env):
    """Key facts of the machine and of what ran on it."""
    with psycopg2.connect(env.database_url) as conn, conn.cursor() as cur:
        cur.execute("SHOW server_version")
        postgres = cur.fetchone()[0]
    conn.close()
    redis_version = redis.Redis.from_url(env.redis_url).info("server")["redis_version"]
    try:
        wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True)
        load_tool = ((wrk.stdout or wrk.stderr).splitlines() or ["wrk"])[0].split(" Copyright")[0]
    except FileNotFoundError:  # only suites that drive their own requests ran
        load_tool = "wrk not installed"
    facts = {
        "cpu": f"{os.cpu_count()} cores ({_cpu_model()})",
        "memory": _memory_gib(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "postgres": f"{postgres}; {env.describe()['postgres']}",
        "redis": f"{redis_version}; {env.describe()['redis']}",
        "load tool": load_tool + ", 1 thread, --timeout 10s",
        "gateway": env.describe()["gateway"],
        "upstream": env.describe()["upstream"],
        "logging": env.describe()["logging"],
        "revision": _git_revision(),
    }
    return facts


def _new_result_path(now):
    """bench/results/<UTC timestamp>.md, with a suffix if a run of the same minute is recorded already."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = now.strftime("%Y-%m-%dT%H%MZ")
    path, number = RESULTS / f"{stamp}.md", 1
    while path.exists():
        number += 1
        path = RESULTS / f"{stamp}-{number}.md"
    return path


def write_run(facts, sections, label=""):
    """Write one run (machine facts, then each benchmark's markdown) to its own file in bench/results/."""
    now = datetime.now(UTC)
    command = " ".join([".venv/bin/python -m bench", *sys.argv[1:]])
    lines = [f"# Run {now:%Y-%m-%d %H:%M} UTC{f' ({label})' if label else ''}", "", f"Command: `{command}`", ""]
    lines += [f"- {name}: {value}" for name, value in facts.items()]
    lines.append("- all processes (wrk, fake upstream, gateway, Postgres, Redis) share these cores")
    for title, body in sections:
        lines += ["", f"## {title}", "", *body]
    path = _new_result_path(now)
    path.write_text("\n".join(lines) + "\n")
    return path
