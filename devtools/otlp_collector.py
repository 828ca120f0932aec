"""A small OTLP/HTTP trace collector for the tests and the bench: it decodes each ``POST /v1/traces``
(``opentelemetry-proto``'s ExportTraceServiceRequest) and keeps the spans, for a test to wait on."""

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from devtools.ports import unused_port


def _value(any_value):
    return getattr(any_value, any_value.WhichOneof("value"))


class OtlpCollector:
    """Listens on 127.0.0.1 in a thread of the test; ``spans`` are dicts (name, kind, ids in hex,
    attributes, the resource's attributes). ``decode=False`` (the bench) only counts the exports
    and their bytes, so the collector's own CPU stays out of the measurement."""

    def __init__(self, decode=True):
        self.spans = []
        self.exports = self.bytes_received = 0
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                collector.exports += 1
                collector.bytes_received += len(body)
                if decode:
                    collector.receive(ExportTraceServiceRequest.FromString(body))
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", unused_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def receive(self, request):
        for resource_spans in request.resource_spans:
            resource = {kv.key: _value(kv.value) for kv in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    self.spans.append(
                        {
                            "name": span.name,
                            "kind": span.kind,
                            "trace_id": span.trace_id.hex(),
                            "span_id": span.span_id.hex(),
                            "parent_span_id": span.parent_span_id.hex(),
                            "attributes": {kv.key: _value(kv.value) for kv in span.attributes},
                            "resource": resource,
                        }
                    )

    def wait_for(self, predicate, timeout=10.0):
        """The spans once ``predicate(spans)`` holds; fails after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self.spans):
                return list(self.spans)
            time.sleep(0.05)
        raise AssertionError(f"spans never arrived as expected: {self.spans}")

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
