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


def operations(spec):
    """(path, method, operation) for every operation in the spec."""
    for path, entries in spec["paths"].items():
        for method, operation in entries.items():
            if method != "parameters":
                yield path, method, operation


def required_security(spec, operation):
    """The security requirement that applies to one operation (its own, else the spec's)."""
    return operation.get("security", spec.get("security", []))


def test_keyed_routes_declare_the_bearer_api_key_so_swagger_ui_can_authorize(client):
    spec = client.get("/openapi.json").get_json()
    scheme = spec["components"]["securitySchemes"]["ApiKey"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    keyed = [(path, method, op) for path, method, op in operations(spec) if path.startswith(("/v1", "/user", "/admin"))]
    assert keyed and all(required_security(spec, op) == [{"ApiKey": []}] for _, _, op in keyed)


def test_health_routes_need_no_key_and_metrics_takes_its_own_token(client):
    spec = client.get("/openapi.json").get_json()
    for path, _, operation in operations(spec):
        if path.startswith("/health"):
            assert required_security(spec, operation) == [], path
    metrics = spec["paths"]["/metrics"]["get"]
    assert {"MetricsToken": []} in required_security(spec, metrics)


def test_spec_describes_the_api_and_titles_every_tag_it_uses(client):
    spec = client.get("/openapi.json").get_json()
    description = spec["info"]["description"]
    assert "Authorization: Bearer" in description and '"error"' in description
    declared = {tag["name"]: tag for tag in spec["tags"]}
    used = {tag for _, _, operation in operations(spec) for tag in operation["tags"]}
    assert "Model API (OpenAI- and Anthropic-compatible)" in used and "Admin: users" in used
    for name in used:
        assert name in declared, f"operation tag {name!r} is not declared"
        assert "_" not in name and name[0].isupper(), f"tag {name!r} is not a title"
        assert declared[name].get("description"), f"tag {name!r} has no description"
