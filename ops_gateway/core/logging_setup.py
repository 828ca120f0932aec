"""Logging configured once, to stdout: JSON lines or text, with pid, source and request id."""

import json
import logging
import sys
from datetime import UTC, datetime

from flask import g, has_request_context

# Attributes every LogRecord has; anything else passed via ``extra`` is emitted as a field.
_STANDARD_ATTRS = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


class RequestContextFilter(logging.Filter):
    """Stamp the current request id (and user id, never a key) on every record."""

    def filter(self, record):
        """Add request_id/user_id when inside a request."""
        if has_request_context():
            record.request_id = getattr(g, "request_id", None)
            if getattr(g, "user", None):
                record.user_id = g.user["user_id"]
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record):
        """Serialise the record and its extra fields."""
        payload = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                payload[key] = value
        if record.exc_info:
            payload["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


# Control characters (C0, DEL, C1) and the Unicode line and paragraph separators, as visible
# escapes: a logged value (a request path, a header, a message) can never end the line it is on
# and start a forged one.
_ESCAPES = {
    **{code: f"\\x{code:02x}" for code in (*range(0x20), 0x7F, *range(0x80, 0xA0))},
    ord("\n"): "\\n",
    ord("\r"): "\\r",
    ord("\t"): "\\t",
    0x2028: "\\u2028",
    0x2029: "\\u2029",
}


def escape_controls(text):
    """``text`` with every control character written as an escape (``\\n``, ``\\x1b``...)."""
    return text.translate(_ESCAPES)


class TextFormatter(logging.Formatter):
    """One human-readable line per record: the message, then the extra fields as key=value.

    The message and every value are escaped (``escape_controls``), so each line that starts at
    the left margin is a record. A traceback keeps its lines, each indented under its record.
    """

    def __init__(self):
        super().__init__("%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s")

    def format(self, record):
        """The escaped line, then any traceback or stack indented beneath it."""
        record.message = escape_controls(record.getMessage())
        record.asctime = self.formatTime(record, self.datefmt)
        line = self.formatMessage(record)
        extras = " ".join(
            f"{k}={escape_controls(str(v))}"
            for k, v in record.__dict__.items()
            if k not in _STANDARD_ATTRS and not k.startswith("_")
        )
        if extras:
            line = f"{line} {extras}"
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        for block in (record.exc_text, record.stack_info and self.formatStack(record.stack_info)):
            if block:
                line += "".join(f"\n    {escape_controls(part)}" for part in block.splitlines())
        return line


def configure_logging(level, fmt):
    """Install one stdout handler on the ``ops_gateway`` logger tree (idempotent)."""
    # Neither format shows source lines, thread names or multiprocessing names, so they are not
    # collected (the logging HOWTO's "Optimization"): finding the caller walks the stack for
    # every record.
    logging._srcfile = None
    logging.logThreads = logging.logMultiprocessing = False
    root = logging.getLogger("ops_gateway")
    root.setLevel(level.upper())
    for handler in list(root.handlers):
        if getattr(handler, "_ops_gateway", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stdout)
    handler._ops_gateway = True
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(RequestContextFilter())
    root.addHandler(handler)
    root.propagate = False
