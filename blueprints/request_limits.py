"""Request size and time limits: what a client may send, and how slowly, before anything else runs.

A body over ``MAX_REQUEST_BYTES`` is refused with 413 from its Content-Length alone, unread, and
the connection is closed so the server does not drain it either. A body that takes longer than
``CLIENT_BODY_TIMEOUT_SECONDS`` to arrive gets 408; one that ends before its Content-Length (the
client gave up) gets 400 ``incomplete_body``, so a half-sent request is never authenticated,
counted or sent upstream. A JSON body with a non-finite number (``NaN``, ``Infinity``,
``-Infinity``: not JSON, though Python's parser accepts them) gets 400 ``non_finite_number``, so
no endpoint ever sees one and none reaches upstream; one nested deeper than ``MAX_JSON_DEPTH``
gets 400 ``too_deeply_nested`` (the parser would otherwise exhaust the stack). A NUL character
in the path, the query string, a form body or any JSON string gets 400 ``nul_character``:
Postgres text cannot hold one and no field of this API needs one. All of these happen before
authentication, JSON parsing or any database or Redis call. Slow headers are bounded by gunicorn
(``keepalive`` in gunicorn.conf.py, from ``CLIENT_HEADER_TIMEOUT_SECONDS``).
"""

import json
import math
import re

import gevent
from flask import current_app, request
from werkzeug.exceptions import RequestEntityTooLarge

from ops_gateway.core.errors import BadRequest, RequestTimeout, TooLarge
from ops_gateway.core.lingering import half_close_and_drain

# Set in the WSGI environ when the connection must not be reused; gunicorn.conf.py's
# post_request hook closes it (gunicorn ignores a Connection header set by the app).
CLOSE_CONNECTION = "ops_gateway.close_connection"
# Far below what exhausts Python's stack, far above any real request (a tool's JSON schema included).
MAX_JSON_DEPTH = 128
# From where the last one ended, the next bracket outside a string (or a whole string): read in
# sequence, never searched for, so an unterminated string ends the scan instead of being retried.
_JSON_NESTING_TOKEN = re.compile(rb'[^"\[\]{}]*+("(?:[^"\\]++|\\.)*+"|[\[\]{}])')
# ``\u0000`` as an escape, not as text after an escaped backslash (``\\u0000``).
_JSON_NUL_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


def _refuse(kind, message, details, code=None):
    request.environ[CLOSE_CONNECTION] = True
    raise kind(message, details, code=code, headers={"Connection": "close"})


def refuse_nul(location):
    """Raise ``nul_character`` for a NUL found in ``location`` (path, query, form or json)."""
    message = f"the request's {location} contains a NUL character (\\u0000), which no field accepts"
    raise BadRequest(message, {"location": location}, code="nul_character")


def refuse_nul_in_url():
    """Refuse a NUL in the decoded path or anywhere in the query string."""
    if "\x00" in request.path:
        refuse_nul("path")
    query = request.query_string
    if b"%00" in query or b"\x00" in query:
        refuse_nul("query")


def receive_body():
    """before_request: refuse an oversized body unread; read the rest within the body deadline."""
    refuse_nul_in_url()
    limit = current_app.config["MAX_REQUEST_BYTES"]
    length = request.content_length
    if length is not None and length > limit:
        _refuse(TooLarge, f"request bodies are limited to {limit} bytes", {"max_bytes": limit})
    if not length and request.headers.get("Transfer-Encoding", "").lower() != "chunked":
        return
    seconds = current_app.config["CLIENT_BODY_TIMEOUT_SECONDS"]
    deadline = gevent.Timeout(seconds)
    deadline.start()
    try:
        received = len(request.get_data(cache=True))
    except RequestEntityTooLarge:  # a chunked body, stopped by werkzeug at MAX_CONTENT_LENGTH
        _refuse(TooLarge, f"request bodies are limited to {limit} bytes", {"max_bytes": limit})
    except gevent.Timeout as timeout:
        if timeout is not deadline:
            raise
        _refuse(RequestTimeout, f"the request body did not arrive within {seconds}s", {"seconds": seconds})
    finally:
        deadline.close()
    if length is not None and received < length:  # the client gave up mid-body: nothing else may run
        message = f"the request body ended after {received} of its {length} bytes"
        _refuse(BadRequest, message, {"received": received, "content_length": length}, "incomplete_body")
    if request.is_json:
        body = request.get_data(cache=True)
        refuse_deep_nesting(body)
        refuse_json_nul(body)
        refuse_non_finite_numbers(body)
    elif request.mimetype == "application/x-www-form-urlencoded":
        body = request.get_data(cache=True)
        if b"%00" in body or b"\x00" in body:
            refuse_nul("form")


def refuse_deep_nesting(body):
    """Raise ``too_deeply_nested`` if a JSON body nests arrays and objects past ``MAX_JSON_DEPTH``.

    The bracket count bounds the depth, so only a body with that many brackets is scanned.
    """
    if body.count(b"[") + body.count(b"{") <= MAX_JSON_DEPTH:
        return
    depth, position = 0, 0
    while token := _JSON_NESTING_TOKEN.match(body, position):
        position, bracket = token.end(), token.group(1)
        if bracket in (b"[", b"{"):
            depth += 1
            if depth > MAX_JSON_DEPTH:
                message = f"JSON bodies may nest arrays and objects at most {MAX_JSON_DEPTH} levels deep"
                raise BadRequest(message, {"max_depth": MAX_JSON_DEPTH}, code="too_deeply_nested")
        elif bracket in (b"]", b"}"):
            depth -= 1


def refuse_json_nul(body):
    """Raise ``nul_character`` if any JSON string (a key or a value) holds a NUL."""
    if b"\x00" in body or (b"\\u0000" in body and _JSON_NUL_ESCAPE.search(body)):
        refuse_nul("json")


class NonFiniteNumber(ValueError):
    """A JSON body holds NaN or an infinity."""


def _refuse_constant(name):
    raise NonFiniteNumber(name)


def _finite_float(text):
    value = float(text)
    if not math.isfinite(value):
        raise NonFiniteNumber(text)
    return value


def refuse_non_finite_numbers(body):
    """Raise ``non_finite_number`` if a JSON body holds NaN, Infinity or -Infinity.

    Only a body that spells one of them is parsed here (a substring check keeps every other body
    at one scan); malformed JSON is left to the view's parser and its own 400.
    """
    if b"NaN" not in body and b"Infinity" not in body:
        return
    try:
        json.loads(body, parse_constant=_refuse_constant, parse_float=_finite_float)
    except NonFiniteNumber as exc:
        message = "JSON numbers must be finite: NaN, Infinity and -Infinity are not allowed"
        raise BadRequest(message, {"value": str(exc)}, code="non_finite_number") from None
    except (ValueError, RecursionError):
        return


def linger_and_close(req, environ):
    """gunicorn post_request: end a connection the app refused a body on, without a reset.

    The answer is already sent; half-close, drain briefly and boundedly, then let gunicorn close.
    """
    if not environ.get(CLOSE_CONNECTION):
        return
    req.must_close = True
    client = environ.get("gunicorn.socket")
    if client is None:
        return
    half_close_and_drain(client)


def init_app(app):
    """Register the limit as the first check after the request's id and clock."""
    app.config["MAX_CONTENT_LENGTH"] = app.config["MAX_REQUEST_BYTES"]
    app.before_request(receive_body)
