"""The bundled fake OpenRouter as a child process of ``make run-demo``."""

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

from devtools.ports import unused_port

START_TIMEOUT_SECONDS = 15


def start_fake_openrouter(instance_path):
    """Start the fake on a free port in its own process group; return (process, its API base URL).

    Its own process group, like the gateway's, so the caller alone decides when it stops.
    """
    port = unused_port("127.0.0.1")
    state_file = os.path.join(instance_path, "fake-openrouter.json")
    args = [sys.executable, "-m", "devtools.fake_openrouter", "--port", str(port)]
    process = subprocess.Popen([*args, "--state-file", state_file], process_group=0)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while process.poll() is None and time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{url}/_control", timeout=1).close()
            return process, f"{url}/api/v1"
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    process.kill()
    process.wait()
    sys.exit(f"ops-gateway: the fake OpenRouter did not start on port {port}")
