"""A forwarding reverse proxy for end-to-end tests, standing in for Heroku's or Railway's router.

Like those routers it appends the address its client connected from to X-Forwarded-For (keeping
whatever the client sent) and forwards to gunicorn from its own address, 127.0.0.1. Clients get
distinct addresses by binding their sockets to other loopback addresses (127.0.0.2, 127.0.0.3...),
which Linux accepts on ``lo`` without any set-up.
"""

import http.client
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.e2e.servers import free_port

# Per-connection headers (RFC 9110 section 7.6.1): a proxy does not pass them on.
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"}


class ForwardingProxy:
    """A threaded HTTP proxy on 127.0.0.1 in front of ``upstream_port``; ``stop`` shuts it down."""

    def __init__(self, upstream_port):
        handler = type("Handler", (_ForwardingHandler,), {"upstream_port": upstream_port})
        self.port = free_port()
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self):
        """Stop serving and close the listening socket."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def request(self, client_ip, method, path, headers=None, body=None):
        """One request through the proxy from a socket bound to ``client_ip``: (status, decoded JSON)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30, source_address=(client_ip, 0))
        try:
            payload = None if body is None else json.dumps(body).encode()
            sent = {**(headers or {}), **({"Content-Type": "application/json"} if payload else {})}
            conn.request(method, path, body=payload, headers=sent)
            response = conn.getresponse()
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
        finally:
            conn.close()


class _ForwardingHandler(BaseHTTPRequestHandler):
    """Forward one request upstream, X-Forwarded-For extended with the client's socket address."""

    protocol_version = "HTTP/1.1"
    upstream_port = None

    def _forward(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        dropped = HOP_BY_HOP | {"x-forwarded-for"}
        headers = {name: value for name, value in self.headers.items() if name.lower() not in dropped}
        seen = ", ".join(self.headers.get_all("X-Forwarded-For") or [])
        headers["X-Forwarded-For"] = f"{seen}, {self.client_address[0]}" if seen else self.client_address[0]
        upstream = http.client.HTTPConnection("127.0.0.1", self.upstream_port, timeout=30)
        try:
            upstream.request(self.command, self.path, body=body, headers=headers)
            response = upstream.getresponse()
            content = response.read()
        finally:
            upstream.close()
        self.send_response(response.status)
        for name, value in response.getheaders():
            if name.lower() not in HOP_BY_HOP and name.lower() != "content-length":
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)

    do_GET = do_POST = do_PATCH = do_DELETE = _forward

    def log_message(self, format, *args):
        """Quiet: the gateway's own log records each request."""
