"""Serve Swagger UI's files from the installed swagger-ui-bundle, so /docs needs no CDN."""

import swagger_ui_bundle
from flask import send_from_directory


def init_app(app):
    """Route /docs-assets/<file> to the bundled Swagger UI (ReDoc is vendored in static/)."""

    @app.route("/docs-assets/<path:filename>")
    def swagger_ui_asset(filename):
        return send_from_directory(swagger_ui_bundle.swagger_ui_path, filename, max_age=86400)
