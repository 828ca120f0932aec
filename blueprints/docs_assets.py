"""/docs without a CDN, and with an Authorize button.

Swagger UI's files come from the installed swagger-ui-bundle (ReDoc is vendored in static/). The
spec declares how callers authenticate, so Swagger UI's "Try it out" can send a key: every
operation needs an API key unless its view says otherwise (``blueprints/docs.py``: PUBLIC,
METRICS_TOKEN), so a new route is documented as keyed by default.
"""

import swagger_ui_bundle
from flask import send_from_directory

API_KEY_SCHEME = "ApiKey"
METRICS_TOKEN_SCHEME = "MetricsToken"

SECURITY_SCHEMES = {
    API_KEY_SCHEME: {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "API key",
        "description": "A user's API key; for /admin an admin user's key or the bootstrap ADMIN_API_KEY",
    },
    METRICS_TOKEN_SCHEME: {
        "type": "http",
        "scheme": "bearer",
        "description": "METRICS_TOKEN, when one is set",
    },
}


def init_app(app):
    """Route /docs-assets/<file> to Swagger UI's files, and give the spec its security; before
    ``api.init_app``, which reads API_SPEC_OPTIONS."""
    app.config.setdefault("API_SPEC_OPTIONS", {}).update(
        components={"securitySchemes": SECURITY_SCHEMES},
        security=[{API_KEY_SCHEME: []}],
    )

    @app.route("/docs-assets/<path:filename>")
    def swagger_ui_asset(filename):
        return send_from_directory(swagger_ui_bundle.swagger_ui_path, filename, max_age=86400)
