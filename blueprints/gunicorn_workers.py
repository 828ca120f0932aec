"""gunicorn workers whose own error answers are the gateway's JSON envelope, not gunicorn's HTML page.

gunicorn refuses some requests before the Flask app runs: a request line over
``limit_request_line`` (414), too many or too large headers (431), a control character or an
invalid header, request line, method or HTTP version (400), and the like. Its ``handle_error``
chooses the status and logs; these workers let it do both unchanged (so new gunicorn mappings
carry over) but capture the HTML page it writes and send the envelope with that status instead,
always with ``Connection: close``, then half-close and drain what the client is still sending, so
the close does not reset the connection and destroy the answer in flight. An unexpected exception
stays a 500 ``internal_error`` with no internals in the body (gunicorn logs the traceback).

The dashboard gets JSON here too: the request could not be parsed, so its path is not to be
trusted to pick an HTML page. ``gunicorn.conf.py`` names these classes by dotted path, so this
module is imported after gevent's monkey-patching.
"""

import json
from http import HTTPStatus

from gunicorn import util
from gunicorn.workers.ggevent import GeventWorker as _GunicornGeventWorker
from gunicorn.workers.gthread import ThreadWorker as _GunicornThreadWorker

from blueprints.lingering import half_close_and_drain

# code and message by the status gunicorn chose; a status not listed takes 400's or 500's
ERRORS = {
    400: ("bad_request", "The request could not be parsed: its request line, a header or its framing is malformed."),
    403: ("forbidden", "The connection may not send requests to this server."),
    414: ("uri_too_long", "The request line is too long; send long parameters in the request body."),
    417: ("expectation_failed", "The server cannot meet the request's Expect header."),
    431: ("request_header_fields_too_large", "The request has too many headers, or one that is too large."),
    500: ("internal_error", "The server failed to handle the request."),
    501: ("not_implemented", "The request's Transfer-Encoding is not supported."),
}


class _ErrorCapture:
    """Stands in for the client socket while gunicorn writes its error page, keeping the bytes."""

    def __init__(self):
        self.written = b""

    def gettimeout(self):
        """Non-blocking, so gunicorn's write leaves the blocking mode alone."""
        return 0.0

    def sendall(self, data):
        """Keep what gunicorn would have sent."""
        self.written += data

    def status(self):
        """The status from the captured status line (``HTTP/1.1 414 URI Too Long``); 500 if none."""
        parts = self.written.split(b" ", 2)
        return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 500


def error_response(status, exc):
    """The full HTTP/1.1 response carrying the envelope for ``status`` (details only for 4xx)."""
    code, message = ERRORS.get(status) or ERRORS[500 if status >= 500 else 400]
    details = {"reason": str(exc)} if status < 500 else {}
    error = {"code": code, "message": message, "status": status, "details": details, "request_id": None}
    body = json.dumps({"error": error}).encode()
    head = (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
        "Connection: close\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("latin-1") + body


class JsonErrorsMixin:
    """``handle_error`` with gunicorn's status choice and logging, answering with the envelope."""

    def handle_error(self, req, client, addr, exc):
        """Let gunicorn choose the status and log, then send the envelope in place of its page."""
        capture = _ErrorCapture()
        super().handle_error(req, capture, addr, exc)
        try:
            util.write_nonblock(client, error_response(capture.status(), exc))
        except OSError:
            self.log.debug("Failed to send error message.")
            return
        half_close_and_drain(client)


class GeventWorker(JsonErrorsMixin, _GunicornGeventWorker):
    """gunicorn's gevent worker (``WEB_WORKER_CLASS=gevent``) with JSON error answers."""


class ThreadWorker(JsonErrorsMixin, _GunicornThreadWorker):
    """gunicorn's gthread worker (``WEB_WORKER_CLASS=gthread``) with JSON error answers."""
