"""The process wiring every entry point shares: settings, logging, database, Redis, migrations.

The web app (``blueprints.app.create_app``), the clock (``scheduler``), the ``flask`` CLI and
gunicorn's master all start here; the HTTP layer is added on top by ``blueprints.app`` alone, so
nothing under ``ops_gateway/`` imports it.
"""

import hashlib
import hmac
import logging
import os
import time
from urllib.parse import parse_qs, urlsplit

from flask import Flask

from ops_gateway import __version__, cli
from ops_gateway.core import db, embedded, migrations, redis_store
from ops_gateway.core.config import load_settings
from ops_gateway.core.logging_setup import configure_logging
from ops_gateway.limits import rate_limits
from ops_gateway.observability import system_state
from ops_gateway.pipeline import slots as upstream_slots
from ops_gateway.upstream import catalog as model_catalog

logger = logging.getLogger("ops_gateway.app")
security_logger = logging.getLogger("ops_gateway.security")

SESSION_KEY_LABEL = b"ops-gateway session key"


def instance_path_from_env():
    """INSTANCE_PATH, or ``instance/`` beside the code: where embedded data and secrets live."""
    default = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "instance")
    return os.path.abspath(os.environ.get("INSTANCE_PATH") or default)


def resolve_services(settings, instance_path):
    """Fill in DATABASE_URL/REDIS_URL (and local secrets) from the embedded servers when unset.

    Every process start goes through here (gunicorn's master, the app factory in the web workers,
    ``release`` and ``clock``), so this is where a production process without its managed services
    stops, before anything starts a database on an ephemeral disk.
    """
    missing = [name for name in ("DATABASE_URL", "REDIS_URL") if not settings[name]]
    if missing and not settings.EMBEDDED_SERVICES:
        raise SystemExit(missing_services_message(missing))
    if not settings.DATABASE_URL:
        settings["DATABASE_URL"] = embedded.ensure_postgres(instance_path)
        local = embedded.ensure_local_secrets(instance_path)
        for name in ("KEY_HASH_SECRET", "ADMIN_API_KEY", "SECRET_KEY"):
            settings[name] = settings[name] or local[name]
    if not settings.REDIS_URL:
        settings["REDIS_URL"] = embedded.ensure_redis(instance_path)
    settings["SECRET_KEY"] = settings.SECRET_KEY or derived_session_key(settings.KEY_HASH_SECRET)
    return settings


def missing_services_message(missing):
    """The one line a process prints when it refuses to start without its managed services.

    Raised as ``SystemExit`` because gunicorn, the flask CLI and ``python -m scheduler`` all let it
    through as that line on stderr and exit status 1, without a traceback.
    """
    unset = " and ".join(missing) + (" is" if len(missing) == 1 else " are")
    return (
        f"ops-gateway: refusing to start: {unset} not set. Set DATABASE_URL and REDIS_URL to your"
        " managed Postgres and Redis (docs/deploy.md), or EMBEDDED_SERVICES=true for a local run on"
        " embedded servers (make run does this)."
    )


def derived_session_key(key_hash_secret):
    """The default SECRET_KEY: HMAC-SHA256 of KEY_HASH_SECRET under a fixed label, so the session
    signing key is never the key-hashing secret itself (None when there is no secret)."""
    if not key_hash_secret:
        return None
    return hmac.new(key_hash_secret.encode(), SESSION_KEY_LABEL, hashlib.sha256).hexdigest()


def uses_embedded_database(database_url, instance_path):
    """Whether the database is the embedded Postgres: DATABASE_URL unset, or a Unix socket inside the
    instance folder (where ``make run`` and gunicorn's master put it before the workers start)."""
    if not database_url:
        return True
    host = parse_qs(urlsplit(database_url).query).get("host", [""])[0]
    return bool(host) and os.path.abspath(host).startswith(os.path.abspath(instance_path) + os.sep)


def warn_if_metrics_open(config, embedded_database):
    """A loud start-up warning when /metrics answers anyone: no METRICS_TOKEN outside an embedded run."""
    if not config["METRICS_TOKEN"] and not embedded_database:
        security_logger.warning(
            "METRICS_TOKEN is unset: /metrics is open to anyone who can reach this server;"
            " set METRICS_TOKEN or block /metrics at the proxy"
        )


def create_service_app(overrides=None):
    """A Flask app with settings, logging, the database pool and Redis bound, migrated if configured.

    The clock runs its jobs in this app's context; ``blueprints.app.create_app`` adds the HTTP
    layer and then calls ``init_domains``.
    """
    overrides = dict(overrides or {})
    instance_path = overrides.pop("INSTANCE_PATH", None) or instance_path_from_env()
    # import name "ops_gateway": the app's root (and its static/ folder) is this package
    app = Flask("ops_gateway", instance_path=instance_path)
    os.makedirs(app.instance_path, exist_ok=True)
    settings = load_settings(os.environ, overrides)
    embedded_database = uses_embedded_database(settings.DATABASE_URL, app.instance_path)
    settings = resolve_services(settings, app.instance_path)
    app.config.update(settings)
    app.config.update(
        JSON_SORT_KEYS=False,
        STARTED_AT=time.time(),
        # rate-limit windows (limits library)
        RATELIMIT_STORAGE_URI=redis_store.limits_storage_uri(
            app.config["REDIS_URL"],
            app.config["REDIS_SSL_CERT_REQS"],
            app.config["REDIS_CLUSTER"],
            app.config["REDIS_SSL_CA_CERTS"],
        ),
        VERSION=__version__,
    )
    configure_logging(app.config["LOG_LEVEL"], app.config["LOG_FORMAT"])
    warn_if_metrics_open(app.config, embedded_database)

    database = db.Database(
        app.config["DATABASE_URL"],
        maxconn=app.config["DB_POOL_MAX"],
        statement_timeout_ms=app.config["DB_STATEMENT_TIMEOUT_MS"],
        connect_timeout_s=app.config["DB_CONNECT_TIMEOUT_SECONDS"],
        pool_timeout_s=app.config["DB_POOL_TIMEOUT_SECONDS"],
    )
    db.init_app(app, database)
    config = app.config
    app.extensions["ops_gateway.redis"] = redis_store.connect(
        config["REDIS_URL"],
        config["REDIS_POOL_MAX"],
        config["REDIS_SSL_CERT_REQS"],
        config["REDIS_CLUSTER"],
        config["REDIS_SSL_CA_CERTS"],
    )
    if app.config["RUN_MIGRATIONS_ON_START"]:
        run_startup_migrations(database)
    return app


def init_domains(app):
    """Bind what the domains keep per app: resource samples, rate-limit scripts, the catalogue, slots, CLI."""
    system_state.init_app(app)
    rate_limits.init_app(app)
    model_catalog.init_app(app)
    upstream_slots.init_app(app)
    cli.init_app(app)


def run_startup_migrations(database):
    """Migrate at start-up; an unreachable database is logged (``/health/ready`` says 503)."""
    try:
        migrations.migrate(database)
    except db.UNAVAILABLE_ERRORS as exc:
        logger.error("database unreachable at start-up; migrations deferred: %s", exc.__class__.__name__)
