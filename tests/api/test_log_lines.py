"""The text log format writes one line per record: control characters in logged values are escaped."""

import logging
import re

from tests.helpers import bearer, create_user

RECORD_START = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ \[\d+\] ops_gateway")
FORGED = "2026-11-29 16:00:00,000 INFO FAKE"


def log_lines(capsys):
    return [line for line in capsys.readouterr().out.splitlines() if line]


def test_control_characters_in_a_request_cannot_forge_a_log_line(make_app, capsys):
    app = make_app(LOG_FORMAT="text", LOG_LEVEL="info")
    client = app.test_client()
    _, key = create_user(client)
    capsys.readouterr()
    response = client.get("/user/balance%0a2026-11-29%2016:00:00,000%20INFO%20FAKE%0d%1b[2J", headers=bearer(key))
    assert response.status_code == 404
    lines = log_lines(capsys)
    assert lines and all(RECORD_START.match(line) for line in lines), lines
    assert not any(line.startswith(FORGED) for line in lines)
    [access] = [line for line in lines if "path=/user/balance" in line]
    assert f"path=/user/balance\\n{FORGED}\\r\\x1b[2J status=404" in access


def test_messages_and_tracebacks_stay_under_their_record(make_app, capsys):
    make_app(LOG_FORMAT="text", LOG_LEVEL="info")
    logger = logging.getLogger("ops_gateway.app")
    capsys.readouterr()
    logger.warning("user said %s", f"hi\n{FORGED}\u2028x", extra={"reason": "a\rb"})
    try:
        raise ValueError(f"bad\n{FORGED}")
    except ValueError:
        logger.exception("failed")
    lines = log_lines(capsys)
    starts = [line for line in lines if not line.startswith("    ")]
    assert len(starts) == 2 and all(RECORD_START.match(line) for line in starts), lines
    assert starts[0].endswith(f"user said hi\\n{FORGED}\\u2028x reason=a\\rb")
    assert any(line == f"    {FORGED}" for line in lines)  # the exception's second line, indented
    assert "    ValueError: bad" in lines
