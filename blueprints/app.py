"""The app factory: the composition root that puts the HTTP layer on the shared process wiring.

``ops_gateway.services`` builds the app every process shares (settings, database, Redis); this
module adds the per-request hooks, request limits, the OpenAPI docs, every blueprint and the
error envelope. It is the only module that knows both halves.
"""

from werkzeug.middleware.proxy_fix import ProxyFix

from blueprints import (
    all_blueprints,
    anthropic_errors,
    api_overview,
    dashboard_session,
    docs_assets,
    envelope,
    html_blueprints,
    request_hooks,
    request_limits,
)
from ops_gateway import __version__, services
from ops_gateway.core import addresses
from ops_gateway.core.extensions import api
from ops_gateway.telemetry import tracing


def create_app(overrides=None):
    """Build the WSGI app: the shared services, then hooks, request limits, docs, blueprints, errors."""
    app = services.create_service_app(overrides)
    app.config.update(
        API_TITLE="ops-gateway",
        API_VERSION=__version__,
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="/docs",
        OPENAPI_SWAGGER_UI_URL="/docs-assets/",
        OPENAPI_REDOC_PATH="/redoc",
        OPENAPI_REDOC_URL="/static/redoc/redoc.standalone.js",
    )
    tracing.configure()
    request_hooks.init_app(app)
    request_limits.init_app(app)
    services.init_domains(app)
    docs_assets.init_app(app)
    api_overview.init_app(app, all_blueprints())
    api.init_app(app, spec_kwargs={"extra_plugins": [api_overview.TagTitles()]})
    register_blueprints(app)
    envelope.init_app(app)
    anthropic_errors.init_app(app)
    trust_forwarding_proxies(app)
    return app


def trust_forwarding_proxies(app):
    """Behind TRUSTED_PROXY_COUNT proxies, ``request.remote_addr`` is the client they saw, in its
    canonical spelling (``addresses.CanonicalClientAddress``).

    Each of those proxies appends the address it was connected from to X-Forwarded-For, so the
    N-th entry from the right is the last one a client could not write itself; ProxyFix takes it
    (and leaves the socket address when the header has fewer entries). Wrapped outermost, so every
    IP decision (blocks, allowlists, Flask-Limiter, audit and security events, logs) reads it.
    Only X-Forwarded-For is taken: the dashboard reads X-Forwarded-Proto itself.
    """
    app.wsgi_app = addresses.CanonicalClientAddress(app.wsgi_app)
    count = app.config["TRUSTED_PROXY_COUNT"]
    if count:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=count, x_proto=0, x_host=0, x_port=0, x_prefix=0)


def register_blueprints(app):
    """Every HTTP surface, registered through the Api so it appears in the OpenAPI spec."""
    for blueprint in all_blueprints():
        api.register_blueprint(blueprint)
    # The dashboard and /status are HTML pages: plain Flask blueprints, not part of the API spec.
    for blueprint in html_blueprints():
        app.register_blueprint(blueprint)
    dashboard_session.init_app(app)
