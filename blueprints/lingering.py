"""Closing a connection without losing the answer already written to it.

Closing a socket with unread input makes the kernel send a reset, which can destroy the answer
before the client reads it. After refusing a request whose bytes are still arriving (a body over
the limit, a request line gunicorn would not parse), stop sending, read and drop what the client
still sends for at most ``LINGER_SECONDS`` / ``LINGER_MAX_BYTES``, then close.
"""

import socket
import time

LINGER_SECONDS = 1.0
LINGER_MAX_BYTES = 1024 * 1024


def half_close_and_drain(client):
    """Shut the sending side of ``client`` and drain its input, briefly and boundedly."""
    deadline, drained = time.monotonic() + LINGER_SECONDS, 0
    try:
        client.shutdown(socket.SHUT_WR)
        while drained < LINGER_MAX_BYTES and (remaining := deadline - time.monotonic()) > 0:
            client.settimeout(remaining)
            chunk = client.recv(65536)
            if not chunk:
                break
            drained += len(chunk)
    except OSError:
        pass  # the client is gone or slow: nothing more to do before the close
