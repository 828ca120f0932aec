"""The workers' error answer for an unexpected exception: a JSON 500 with no internals, logged by gunicorn."""

import json
import socket
from unittest import mock

import pytest

from blueprints.gunicorn_workers import GeventWorker, ThreadWorker


@pytest.mark.parametrize("worker_class", [GeventWorker, ThreadWorker])
def test_unexpected_exception_is_a_json_500_without_internals(worker_class):
    worker = worker_class.__new__(worker_class)  # handle_error needs only the logger when no request was read
    worker.log = mock.Mock()
    server_side, client_side = socket.socketpair()
    with server_side, client_side:
        worker.handle_error(None, server_side, ("203.0.113.9", 4242), RuntimeError("secret internals"))
        client_side.settimeout(5)
        received = b""
        while chunk := client_side.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 500 Internal Server Error\r\n")
    assert b"Content-Type: application/json" in head and b"Connection: close" in head
    assert json.loads(body) == {
        "error": {
            "code": "internal_error",
            "message": "The server failed to handle the request.",
            "status": 500,
            "details": {},
            "request_id": None,  # refused before the app gave it one
        }
    }
    assert b"secret" not in received
    worker.log.exception.assert_called_once()  # gunicorn's own logging, traceback included
