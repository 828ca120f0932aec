"""The embedded Postgres and Redis that ``make run`` uses: persistence and a quiet stop."""

import subprocess
import sys

import redis

from ops_gateway.core import embedded
from tests.e2e.servers import ROOT


def test_embedded_redis_saves_and_keeps_keys_across_a_restart(tmp_path):
    url = embedded.ensure_redis(tmp_path)
    try:
        client = redis.Redis.from_url(url, decode_responses=True)
        assert client.config_get("save") == {"save": "60 1"}
        client.set("window:survives", "7")
        embedded.stop_redis(tmp_path)
        url = embedded.ensure_redis(tmp_path)
        assert redis.Redis.from_url(url, decode_responses=True).get("window:survives") == "7"
    finally:
        embedded.stop_redis(tmp_path)


def test_embedded_postgres_start_and_stop_print_no_warning_or_traceback(tmp_path):
    script = (
        "import sys\n"
        "from ops_gateway.core import embedded\n"
        "embedded.ensure_postgres(sys.argv[1])\n"
        "assert embedded.stop_postgres(sys.argv[1])\n"
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}  # no XDG_RUNTIME_DIR, as in a container
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
