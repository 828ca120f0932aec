"""LiteLLM's proxy (``litellm[proxy]``, no database) in front of the same fake OpenRouter, for comparison.

It lives in a virtualenv of its own (``LITELLM_VENV``, default ``instance/bench-litellm``), made and
filled from PyPI the first time, so its many dependencies never meet the gateway's. It serves the
bench's model as an OpenAI-compatible deployment at the fake's base URL, with as many workers as
the gateway has, a master key (it refuses to start without one), no callbacks and the local model
cost map (no network at start).
"""

import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

from bench.overhead import MODEL
from tests.e2e.servers import Server, free_port, wait_for

VERSION = "1.108.5"  # later 1.108.x pin extras the package index does not carry
VENV = Path(os.environ.get("LITELLM_VENV") or Path(__file__).resolve().parents[1] / "instance" / "bench-litellm")
START_TIMEOUT_SECONDS = 120  # it imports a great deal
# It refuses to start without a master key (no database: the key is checked from its settings).
MASTER_KEY = "sk-bench-master-key-0123456789abcdef"


def ensure_installed():
    """The ``litellm`` executable of the bench's own virtualenv, installing it when missing."""
    executable = VENV / "bin" / "litellm"
    marker = VENV / f".litellm-{VERSION}"
    if not marker.exists():
        print(f"bench: installing litellm[proxy]=={VERSION} into {VENV} (once)", flush=True)
        if not (VENV / "bin" / "python").exists():
            subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        pip = [str(VENV / "bin" / "python"), "-m", "pip", "install", "--quiet", f"litellm[proxy]=={VERSION}"]
        subprocess.run(pip, check=True)
        marker.touch()
    return executable


@contextmanager
def litellm_proxy(env):
    """LiteLLM's proxy on a free port beside the gateway: yields the server."""
    executable = ensure_installed()
    config = env.instance / "litellm.yaml"
    config.write_text(
        "model_list:\n"
        f"  - model_name: {MODEL}\n"
        "    litellm_params:\n"
        f"      model: openai/{MODEL}\n"
        f"      api_base: {env.upstream.base_url}\n"
        "      api_key: or-key\n"
        "litellm_settings:\n"
        "  drop_params: true\n"
        "  telemetry: false\n"
    )
    port = free_port()
    args = [str(executable), "--config", str(config), "--host", "127.0.0.1", "--port", str(port)]
    args += ["--num_workers", str(env.web_concurrency)]
    quiet = {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR", "LITELLM_TELEMETRY": "False"}
    quiet["LITELLM_MASTER_KEY"] = MASTER_KEY
    server = Server(args, port, {**os.environ, **quiet}, env.instance / f"litellm-{port}.log")
    try:
        wait_for(f"{server.url}/health/liveliness", timeout=START_TIMEOUT_SECONDS, process=server.process)
        yield server
    finally:
        server.stop()
