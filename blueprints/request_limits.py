"""Request size and time limits: what a client may send, and how slowly, before anything else runs.

A body over ``MAX_REQUEST_BYTES`` is refused with 413 from its Content-Length alone, unread, and
the connection is closed so the server does not drain it either. A large body (over 64 KiB, or
chunked) is read only once its caller passed the checks that need no body (``body_screen``: the
route, the IP block, the key), so a wrong key costs the same whatever the body. A body that takes
longer than ``CLIENT_BODY_TIMEOUT_SECONDS`` to arrive gets 408; one that ends before its
Content-Length or its last chunk (the client gave up) gets 400 ``incomplete_body``, so a
half-sent request is never counted or sent upstream; a chunked body whose framing is broken (a
bad chunk size, a chunk without its CRLF) gets 400 ``malformed_body``. A JSON body with a
non-finite number (``NaN``, ``Infinity``, ``-Infinity``: not JSON, though Python's parser
accepts them; or a number too large for a double, such as ``1e400``, which would parse as an
infinity) gets 400 ``non_finite_number``, so no endpoint ever sees one and none reaches upstream;
one nested deeper than ``MAX_JSON_DEPTH`` gets 400 ``too_deeply_nested`` (the parser would
otherwise exhaust the stack). A NUL character in the path, the query string, a form body or any
JSON string gets 400 ``nul_character``: Postgres text cannot hold one and no field of this API
needs one. Apart from a large body's screen, all of these happen before authentication, JSON
parsing or any database or Redis call. Every refusal that leaves bytes unread closes the
connection. Slow headers are bounded by gunicorn (``keepalive`` in gunicorn.conf.py, from
``CLIENT_HEADER_TIMEOUT_SECONDS``).
"""

import json
import math
import re

import gevent
from flask import current_app, request
from gunicorn.http.errors import ParseException
from werkzeug.exceptions import ClientDisconnected, HTTPException, RequestEntityTooLarge

from blueprints import body_screen
from blueprints.lingering import half_close_and_drain
from ops_gateway.core.errors import BadRequest, GatewayError, RequestTimeout, TooLarge

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
# With every digit written as 0, a number can only overflow a double with an exponent ("0e") or
# with 309 or more digits before its point (below that it is under 10**308, finite).
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
_OVERFLOW_DIGITS = b"0" * 309
# Reading a chunked body whose framing is broken: gunicorn's parser raises a ParseException (bad
# chunk size or extension, a chunk without its CRLF, bad trailers); an end before the last chunk
# is an OSError (gunicorn's NoMoreData, the socket's), which werkzeug's stream turns into
# ClientDisconnected.
_BROKEN_FRAMING = ParseException
_ENDED_EARLY = (ClientDisconnected, OSError)


def _refuse(kind, message, details, code=None):
    request.environ[CLOSE_CONNECTION] = True
    raise kind(message, details, code=code)


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
    """before_request: refuse an oversized body unread, screen a large one's caller, read the
    rest within the body deadline and check what it holds."""
    refuse_nul_in_url()
    limit = current_app.config["MAX_REQUEST_BYTES"]
    length = request.content_length
    if length is not None and length > limit:
        _refuse(TooLarge, f"request bodies are limited to {limit} bytes", {"max_bytes": limit})
    chunked = request.headers.get("Transfer-Encoding", "").lower() == "chunked"
    if not length and not chunked:
        return
    if body_screen.is_screened(length, chunked):
        screen_unread_body()
    received = len(_read_body(limit))
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


def _read_body(limit):
    """The whole body, read within CLIENT_BODY_TIMEOUT_SECONDS; its 413, 408 or 400 otherwise."""
    seconds = current_app.config["CLIENT_BODY_TIMEOUT_SECONDS"]
    deadline = gevent.Timeout(seconds)
    deadline.start()
    try:
        return request.get_data(cache=True)
    except RequestEntityTooLarge:  # a chunked body, stopped by werkzeug at MAX_CONTENT_LENGTH
        _refuse(TooLarge, f"request bodies are limited to {limit} bytes", {"max_bytes": limit})
    except (gevent.Timeout, TimeoutError) as timeout:  # ours, or the socket's (before _ENDED_EARLY)
        if isinstance(timeout, gevent.Timeout) and timeout is not deadline:
            raise
        _refuse(RequestTimeout, f"the request body did not arrive within {seconds}s", {"seconds": seconds})
    except _BROKEN_FRAMING as error:
        message = f"the request body's chunked encoding is malformed ({type(error).__name__})"
        _refuse(BadRequest, message, {"transfer_encoding": "chunked"}, "malformed_body")
    except _ENDED_EARLY:
        _refuse(BadRequest, "the request body ended before it was complete", {}, "incomplete_body")
    finally:
        deadline.close()


def screen_unread_body():
    """Raise what ``body_screen.screen`` refuses, closing the connection the body is still on."""
    try:
        body_screen.screen()
    except (GatewayError, HTTPException):
        request.environ[CLOSE_CONNECTION] = True
        raise


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
    """A JSON body holds NaN, an infinity or a number too large for a double."""


def _refuse_constant(name):
    raise NonFiniteNumber(name)


def _finite_float(text):
    if not math.isfinite(float(text)):  # 1e400 parses as inf
        raise NonFiniteNumber(text)
    return float(text)


def _finite_int(text):
    value = int(text)
    if len(text) > 308:
        try:
            float(value)
        except OverflowError:  # a double cannot hold it: upstream's parser would read an infinity
            raise NonFiniteNumber(text) from None
    return value


def may_hold_non_finite_number(body):
    """Whether a JSON body could hold a non-finite number: it spells NaN or Infinity, or a number
    with an exponent or 309+ digits. False means it cannot; True means ``json.loads`` must look."""
    if b"NaN" in body or b"Infinity" in body:
        return True
    digits = body.translate(_DIGITS_AS_ZERO)
    return b"0e" in digits or b"0E" in digits or _OVERFLOW_DIGITS in digits


def refuse_non_finite_numbers(body):
    """Raise ``non_finite_number`` if a JSON body holds NaN, Infinity, -Infinity, or a number a
    double cannot hold (``1e400``, ``-1e400``, 400 digits), wherever it is nested.

    Exact: the body is parsed with hooks on every constant, float and long integer, but only when
    ``may_hold_non_finite_number`` (one translate and three byte searches) says it could hold one.
    Malformed JSON is left to the view's parser and its own 400.
    """
    if not may_hold_non_finite_number(body):
        return
    try:
        json.loads(body, parse_constant=_refuse_constant, parse_float=_finite_float, parse_int=_finite_int)
    except NonFiniteNumber as exc:
        value = str(exc)
        message = "JSON numbers must be finite: NaN, Infinity, -Infinity and numbers beyond a double are not allowed"
        details = {"value": value if len(value) <= 40 else value[:37] + "..."}
        raise BadRequest(message, details, code="non_finite_number") from None
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


def say_connection_closes(response):
    """after_request: a response on a connection that will be closed says so (``Connection: close``)."""
    if request.environ.get(CLOSE_CONNECTION):
        response.headers["Connection"] = "close"
    return response


def init_app(app):
    """Register the limit as the first check after the request's id and clock."""
    app.config["MAX_CONTENT_LENGTH"] = app.config["MAX_REQUEST_BYTES"]
    app.before_request(receive_body)
    app.after_request(say_connection_closes)
