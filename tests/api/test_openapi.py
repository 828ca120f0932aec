"""The OpenAPI document is valid and the docs UIs render without a CDN."""

from openapi_spec_validator import validate


def test_openapi_json_validates(client):
    spec = client.get("/openapi.json").get_json()
    validate(spec)
    assert spec["components"]["schemas"]["Error"]["properties"]["error"]


def test_swagger_ui_and_redoc_render_with_local_assets(client):
    docs = client.get("/docs")
    assert docs.status_code == 200 and b"swagger-ui-bundle.js" in docs.data
    assert client.get("/docs-assets/swagger-ui-bundle.js").status_code == 200
    redoc = client.get("/redoc")
    assert redoc.status_code == 200
    assert client.get("/static/redoc/redoc.standalone.js").status_code == 200


def test_every_operation_documents_its_errors(client):
    spec = client.get("/openapi.json").get_json()
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if method == "parameters":
                continue
            assert "default" in operation["responses"] or any(
                code.startswith(("4", "5")) for code in operation["responses"]
            ), f"{method.upper()} {path} documents no error response"
