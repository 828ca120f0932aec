"""Run the benchmarks: ``.venv/bin/python -m bench`` (or ``make bench``); see docs/performance.md."""

import argparse
import sys

import psutil

from bench import baseline, capacity, comparison, endpoints, features, hostile, overhead, refusals, report, scale
from bench.environment import BenchEnvironment
from bench.load import LoadToolMissing, require_wrk

SUITES = ("compare", "overhead", "baseline", "features", "endpoints", "capacity", "hostile", "refusals", "scale")
WITHOUT_WRK = {"refusals", "scale"}  # the suites that drive their own requests


def parse_args(argv):
    """Command-line options."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--only", default=",".join(SUITES), help=f"comma-separated subset of {', '.join(SUITES)}")
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk measurement (default 10)")
    parser.add_argument("--concurrency", default="1,8,32", help="overhead connection counts (default 1,8,32)")
    parser.add_argument("--usage-rows", type=int, default=5_000_000)
    parser.add_argument("--audit-rows", type=int, default=1_000_000)
    parser.add_argument("--fake-workers", type=int, default=2, help="fake OpenRouter processes (default 2)")
    parser.add_argument("--web-concurrency", type=int, help="gateway workers (default: WEB_CONCURRENCY's default)")
    parser.add_argument("--web-threads", type=int, help="threads per gateway worker (default: WEB_THREADS's)")
    parser.add_argument("--worker-class", choices=("gevent", "gthread"), help="gateway workers (WEB_WORKER_CLASS)")
    parser.add_argument("--worker-connections", type=int, help="gevent: connections per gateway worker")
    parser.add_argument(
        "--capacity-levels", default=",".join(map(str, capacity.LEVELS)), help="capacity: concurrent clients per level"
    )
    parser.add_argument("--capacity-seconds", type=int, default=15, help="capacity: seconds per level (default 15)")
    parser.add_argument(
        "--stream-clients", type=int, default=capacity.STREAM_CLIENTS, help="capacity: concurrent streaming clients"
    )
    parser.add_argument("--label", default="", help="note added to the report heading")
    parser.add_argument("--no-record", action="store_true", help="print only; do not write bench/results/")
    parser.add_argument("--keep", action="store_true", help="keep the /tmp instance directory afterwards")
    args = parser.parse_args(argv)
    args.only = [name.strip() for name in args.only.split(",") if name.strip()]
    args.concurrency = [int(c) for c in args.concurrency.split(",")]
    args.capacity_levels = [int(c) for c in args.capacity_levels.split(",")]
    unknown = set(args.only) - set(SUITES)
    if unknown:
        parser.error(f"unknown suite(s): {', '.join(sorted(unknown))}")
    return args


def main(argv=None):
    """Start the environment, run the chosen suites, print and record the figures, stop everything."""
    args = parse_args(argv)
    try:
        if set(args.only) - WITHOUT_WRK:
            require_wrk()
    except LoadToolMissing as missing:
        print(f"bench: {missing}", file=sys.stderr)
        return 2
    sections = []
    # Other work on the machine moves every wall-clock figure: say how busy it was before we began.
    background = psutil.cpu_percent(interval=2)
    env = BenchEnvironment(
        args.fake_workers,
        args.web_concurrency,
        args.web_threads,
        keep=args.keep,
        worker_class=args.worker_class,
        worker_connections=args.worker_connections,
    )
    print(f"bench: instance {env.instance}", flush=True)
    with env:
        facts = report.machine(env)
        facts["busy before the run"] = f"{background:.0f}% of all cores (other processes), load average " + (
            " ".join(f"{load:.1f}" for load in psutil.getloadavg())
        )
        if background > 10:
            print(f"bench: WARNING the machine was {background:.0f}% busy before the run; figures will be noisy")
        for name, value in facts.items():
            print(f"  {name}: {value}")
        if "compare" in args.only:
            print("side by side (bare proxy gthread/gevent, ops-gateway, LiteLLM; stages):", flush=True)
            section = comparison.run(env, args.duration, comparison.CONCURRENCY)[1]
            sections.append(("Side by side: bare proxy, ops-gateway, LiteLLM", section))
        if "overhead" in args.only:
            print("gateway overhead (POST /v1/chat/completions vs the fake OpenRouter directly):", flush=True)
            sections.append(("Gateway overhead", overhead.run(env, args.duration, args.concurrency)[1]))
        if "baseline" in args.only:
            print("baseline (bench/bare_proxy.py, the same load and cores):", flush=True)
            sections.append(("Baseline: a bare Flask proxy", baseline.run(env, args.duration, args.concurrency)[1]))
        if "features" in args.only:
            print("tracing off and on, and a response-cache hit:", flush=True)
            sections.append(("Tracing and the response cache", features.run(env, args.duration)[1]))
        if "endpoints" in args.only:
            print("endpoint throughput:", flush=True)
            sections.append(("Endpoint throughput", endpoints.run(env, args.duration)[1]))
        if "capacity" in args.only:
            print("capacity (slow completions held at once):", flush=True)
            levels, seconds = args.capacity_levels, args.capacity_seconds
            section = capacity.run(env, seconds, levels, args.stream_clients)[1]
            sections.append(("Capacity: concurrent slow completions", section))
        if "hostile" in args.only:
            print("hostile clients (slow clients held open, 100 MB bodies):", flush=True)
            sections.append(("Hostile clients: slow connections and oversized bodies", hostile.run(env)[1]))
        if "refusals" in args.only:
            print("cheap refusals (4 MB bodies behind a wrong key or a blocked IP):", flush=True)
            sections.append(("Cheap refusals: large bodies from callers refused", refusals.run(env)[1]))
        if "scale" in args.only:
            print("data scale:", flush=True)
            sections.append(("Data scale", scale.run(env, args.usage_rows, args.audit_rows)[1]))
    if not args.no_record:
        print(f"bench: recorded in {report.write_run(facts, sections, args.label)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
