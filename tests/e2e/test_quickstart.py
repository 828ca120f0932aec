"""README's Quickstart, run verbatim against ``make run-demo``.

The blocks marked ``<!-- quickstart: run -->`` are run in order in one bash session (python blocks
through the venv's interpreter); the only inputs are the variables the README tells the reader to
export, GATEWAY and ADMIN_API_KEY.
"""

import json
import os
import re
import subprocess
import sys

import pytest

from tests.e2e.devserver import DevServer, scratch_instance
from tests.e2e.servers import ROOT

MARKED_BLOCK = re.compile(r"<!-- quickstart: run -->\n```(\w+)\n(.*?)```", re.S)


def quickstart_blocks():
    """(language, code) of each marked block of README's Quickstart section, in order."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Quickstart\n", 1)[1].split("\n## ", 1)[0]
    return MARKED_BLOCK.findall(section)


def as_one_script(blocks):
    """One bash script: shell blocks as they are, python blocks fed to ``python`` on stdin."""
    parts = ["set -euo pipefail"]
    for language, code in blocks:
        parts.append(code if language == "sh" else f"python - <<'QUICKSTART_PY'\n{code}QUICKSTART_PY")
    return "\n".join(parts) + "\n"


@pytest.fixture
def demo():
    """``make run-demo`` on a scratch instance folder, interrupted afterwards."""
    with scratch_instance() as instance:
        server = DevServer(instance, "--demo")
        try:
            server.wait_healthy()
            yield server
        finally:
            server.interrupt()


def test_readme_quickstart_blocks_cover_user_credits_curl_and_both_sdks():
    codes = [code for _, code in quickstart_blocks()]
    assert [language for language, _ in quickstart_blocks()] == ["sh", "sh", "sh", "python", "python"]
    assert "/admin/users" in codes[0] and "/credits" in codes[1]
    assert "/v1/chat/completions" in codes[2] and "from openai import OpenAI" in codes[3]
    assert "from anthropic import Anthropic" in codes[4]


def test_readme_quickstart_runs_verbatim_against_make_run_demo(demo, tmp_path):
    env = dict(os.environ, GATEWAY=demo.url, ADMIN_API_KEY=demo.line_after("demo admin key:"))
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env["PATH"]  # `python` with both SDKs
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_BASE_URL"):
        env.pop(name, None)
    result = subprocess.run(
        ["bash", "-c", as_one_script(quickstart_blocks())],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    documents = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    created, credits, completion = documents
    assert created["api_key"] and created["user"]["username"] == "ada"
    assert credits["user_id"] == created["user"]["id"]
    assert completion["choices"][0]["message"]["content"]
    openai_reply, anthropic_reply = result.stdout.splitlines()[-2:]
    assert openai_reply and not openai_reply.startswith("{")
    assert anthropic_reply.startswith("word0")  # the fake's answer through /v1/messages
