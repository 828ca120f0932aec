"""Profile gunicorn workers under chat-completion load with py-spy: ``python -m bench.profile``.

Writes one collapsed-stack file per worker (flamegraph.pl / speedscope input) and prints the
frames with the most samples (inclusive), so the heavy parts of a request stand out.
"""

import argparse
import collections
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import psutil

from bench.environment import BenchEnvironment
from bench.load import run_wrk
from bench.overhead import BODY


def _py_spy():
    """py-spy from PATH or beside this interpreter (the venv's bin), or None."""
    beside = Path(sys.executable).parent / "py-spy"
    return shutil.which("py-spy") or (str(beside) if beside.exists() else None)


def _workers(master_pid):
    """The gunicorn worker pids under ``master_pid``."""
    return [child.pid for child in psutil.Process(master_pid).children()]


def _record(pid, seconds, out, mode):
    """py-spy record one process into a collapsed-stack file."""
    args = [_py_spy(), "record", "--pid", str(pid), "--duration", str(seconds), "--rate", "250"]
    args += ["--format", "raw", "--output", str(out), "--nonblocking", "--threads"]
    # cpu: threads on a CPU; gil: the thread holding the GIL; wall: every thread, waiting or not.
    args += {"cpu": [], "gil": ["--gil"], "wall": ["--idle"]}[mode]
    subprocess.run(args, check=True, capture_output=True)


def summarise(paths, top=40, prefix=None):
    """(total samples, [(frame, inclusive samples)]) over collapsed-stack files."""
    inclusive, total = collections.Counter(), 0
    for path in paths:
        for line in Path(path).read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            count = int(count)
            total += count
            frames = stack.split(";")
            for frame in set(frames):
                if prefix is None or prefix in frame:
                    inclusive[frame] += count
    return total, inclusive.most_common(top)


def main(argv=None):
    """Start everything, load it with wrk and record every gateway worker at once."""
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--mode", choices=("cpu", "gil", "wall"), default="cpu", help="what a sample counts (cpu)")
    parser.add_argument("--out", default="/tmp/ops-gateway-profile")
    args = parser.parse_args(argv)
    if _py_spy() is None:
        print("bench.profile: py-spy is not installed: .venv/bin/pip install py-spy", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with BenchEnvironment() as env:
        _, key = env.create_user("bench-profile@example.com")
        url = f"{env.gateway.url}/v1/chat/completions"
        run_wrk(url, args.connections, 3, "POST", BODY, key, warmup=0)
        files = [out / f"worker-{pid}.txt" for pid in _workers(env.gateway.process.pid)]
        recorders = [
            threading.Thread(target=_record, args=(int(f.stem.split("-")[1]), args.seconds, f, args.mode))
            for f in files
        ]
        for recorder in recorders:
            recorder.start()
        print(run_wrk(url, args.connections, args.seconds, "POST", BODY, key, warmup=0).line())
        for recorder in recorders:
            recorder.join()
    total, frames = summarise(files)
    print(f"{total} samples in {', '.join(map(str, files))}\ninclusive share of samples:")
    for frame, count in frames:
        print(f"{100 * count / total:6.1f}%  {frame}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
