"""Payload logging, opt-in per user, org or key (``log_payloads``): a settled request's request and
response bodies, kept for support to see what was asked and answered.

Secrets are redacted before anything is stored: the gateway's API keys, bearer tokens, OpenAI- and
Anthropic-style keys, and every PAYLOAD_REDACT_PATTERNS match. Each body is cut at
PAYLOAD_MAX_BYTES characters (``truncated`` says so); the retention job deletes rows older than
PAYLOAD_RETENTION_DAYS. A body that cannot be stored (the database is down) is logged and
dropped: the request was already answered and settled.
"""

import logging
import re

from ops_gateway.core import db

logger = logging.getLogger("ops_gateway.telemetry")

REDACTED = "[REDACTED]"
_SECRETS = (
    re.compile(r"gw_(?:live|test)_[A-Za-z0-9_-]{20,}"),  # the gateway's own keys
    re.compile(r"(?i)bearer\s+[A-Za-z0-9._~+/=-]{8,}"),
    re.compile(r"sk-(?:ant-|or-|proj-)?[A-Za-z0-9_-]{16,}"),  # OpenAI, Anthropic, OpenRouter keys
)


def redact(text, patterns=()):
    """``text`` with every secret (the built-in kinds and ``patterns``) replaced by REDACTED."""
    for pattern in (*_SECRETS, *patterns):
        text = pattern.sub(REDACTED, text)
    return text


def _cut(text, limit):
    return (text[:limit], True) if len(text) > limit else (text, False)


def store(settlement_id, user_id, request_text, response_text, config):
    """Keep one settled request's bodies, redacted and capped (once per settlement)."""
    patterns, limit = config["PAYLOAD_REDACT_PATTERNS"], config["PAYLOAD_MAX_BYTES"]
    request_body, request_cut = _cut(redact(request_text, patterns), limit)
    response_body, response_cut = _cut(redact(response_text, patterns), limit)
    try:
        with db.statement() as cur:
            cur.execute(
                "INSERT INTO request_payloads (settlement_id, user_id, request_body, response_body, truncated)"
                " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (settlement_id) DO NOTHING",
                (settlement_id, user_id, request_body, response_body, request_cut or response_cut),
            )
    except db.UNAVAILABLE_ERRORS:
        logger.warning("could not store a request's payloads", extra={"settlement_id": settlement_id})
