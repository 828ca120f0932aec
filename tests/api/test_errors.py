"""Every error is one JSON envelope; no internals leak."""

import json
import logging

import marshmallow as ma


def assert_envelope(response, status, code):
    body = response.get_json()
    assert response.status_code == status
    assert set(body) == {"error"}
    assert body["error"]["status"] == status
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert isinstance(body["error"]["details"], dict)
    return body["error"]


def test_unknown_route_is_404_envelope(client):
    assert_envelope(client.get("/no/such/route"), 404, "not_found")


def test_wrong_method_is_405_envelope(client):
    response = client.delete("/health")
    assert_envelope(response, 405, "method_not_allowed")
    assert "GET" in response.headers["Allow"]


def test_request_id_is_echoed_or_created(client):
    assert client.get("/health/live", headers={"X-Request-ID": "abc-123"}).headers["X-Request-ID"] == "abc-123"
    minted = client.get("/health/live").headers["X-Request-ID"]
    assert len(minted) == 32
    # Garbage (header injection, absurd length) is replaced, not echoed.
    assert client.get("/health/live", headers={"X-Request-ID": "x" * 500}).headers["X-Request-ID"] != "x" * 500


def test_unexpected_exception_is_500_without_internals(app, caplog):
    @app.route("/boom")
    def boom():
        raise RuntimeError("secret internal detail SELECT * FROM users")

    app.config["PROPAGATE_EXCEPTIONS"] = False
    app.testing = False
    with caplog.at_level(logging.ERROR, logger="ops_gateway.app"):
        logging.getLogger("ops_gateway").propagate = True
        try:
            response = app.test_client().get("/boom", headers={"X-Request-ID": "req-500"})
        finally:
            logging.getLogger("ops_gateway").propagate = False
    error = assert_envelope(response, 500, "internal_error")
    assert "secret" not in response.get_data(as_text=True)
    assert "SELECT" not in response.get_data(as_text=True)
    assert error["message"]
    record = next(r for r in caplog.records if r.getMessage() == "unhandled exception")
    assert record.request_id == "req-500"


def test_access_log_is_one_json_line_with_request_id(make_app, capsys):
    app = make_app(LOG_LEVEL="info", LOG_FORMAT="json")
    capsys.readouterr()
    app.test_client().get("/health/live", headers={"X-Request-ID": "trace-me"})
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    access = [line for line in lines if line["message"] == "request"]
    assert access == [
        {
            **access[0],
            "logger": "ops_gateway.app",
            "method": "GET",
            "route": "/health/live",
            "status": 200,
            "request_id": "trace-me",
        }
    ]
    assert access[0]["latency_ms"] >= 0 and access[0]["pid"] > 0


def test_malformed_json_body_is_envelope(app):
    from flask_smorest import Blueprint

    blp = Blueprint("echo", __name__)

    class EchoSchema(ma.Schema):
        name = ma.fields.String(required=True)

    @blp.route("/echo", methods=["POST"])
    @blp.arguments(EchoSchema)
    def echo(payload):
        return payload

    app.register_blueprint(blp)
    client = app.test_client()
    broken = client.post("/echo", data="{not json", content_type="application/json")
    assert broken.status_code in (400, 422)
    assert broken.get_json()["error"]["code"] in ("bad_request", "validation_error")
    invalid = client.post("/echo", json={"name": 5})
    assert_envelope(invalid, 422, "validation_error")
    assert "name" in invalid.get_json()["error"]["details"]["fields"]["json"]
