"""Settings parsed strictly from environment variables.

Every variable the gateway reads is declared once in ``VARIABLES``; README.md's configuration
table lists the same names and defaults. A value that does not parse stops start-up with a
message naming the variable, so a typo never silently falls back to a default.
"""

import json
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation


class ConfigError(ValueError):
    """Raised when an environment variable holds a value the gateway cannot use."""


def _parse_bool(raw):
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


def _parse_positive_int(raw):
    value = int(raw)
    if value < 0:
        raise ValueError("must not be negative")
    return value


def _parse_positive_float(raw):
    value = float(raw)
    if value < 0:
        raise ValueError("must not be negative")
    return value


def _parse_decimal(raw):
    try:
        return Decimal(raw)
    except InvalidOperation as exc:
        raise ValueError("expected a decimal number") from exc


def _parse_markup(raw):
    value = _parse_decimal(raw)
    if not value.is_finite() or not 0 < value <= 100:
        raise ValueError("expected a factor above 0 and at most 100")
    return value


def _parse_fraction(raw):
    value = _parse_decimal(raw)
    if not value.is_finite() or not 0 <= value <= 1:
        raise ValueError("expected a factor from 0 to 1")
    return value


def _parse_patterns(raw):
    """A JSON list of regular expressions, each compiled (a bad one is refused at start-up)."""
    patterns = json.loads(raw)
    if not isinstance(patterns, list) or not all(isinstance(pattern, str) for pattern in patterns):
        raise ValueError("expected a JSON list of regular expressions")
    return tuple(re.compile(pattern) for pattern in patterns)


def _choice(*allowed):
    def parse(raw):
        value = raw.strip().lower()
        if value not in allowed:
            raise ValueError(f"expected one of {', '.join(allowed)}")
        return value

    return parse


def _parse_optional_str(raw):
    return raw.strip() or None


def _parse_issuer(raw):
    issuer = raw.strip().rstrip("/")
    if not issuer.startswith(("https://", "http://")):
        raise ValueError("expected an http(s) URL (the provider's issuer, without /.well-known/...)")
    return issuer


def _parse_lowercase_list(raw):
    """Comma-separated, trimmed, lowercased, empty items dropped (a leading @ of a domain too)."""
    return tuple(item.strip().lstrip("@").lower() for item in raw.split(",") if item.strip().lstrip("@"))


def _parse_readable_file(raw):
    path = raw.strip()
    if not path:
        return None
    try:
        with open(path, "rb"):
            pass
    except FileNotFoundError as exc:
        raise ValueError("no such file") from exc
    except IsADirectoryError as exc:
        raise ValueError("a directory, not a file") from exc
    except OSError as exc:
        raise ValueError(f"cannot be read ({exc.strerror})") from exc
    return path


@dataclass(frozen=True)
class Variable:
    """One environment variable: its name, default and parser."""

    name: str
    default: object
    parse: object = field(default=_parse_optional_str)
    help: str = ""


OPENROUTER_DEFAULT_BASE_URL = "https://openrouter.ai/api/v1"
VARIABLES = [
    Variable("DATABASE_URL", None, help="PostgreSQL URL; required unless EMBEDDED_SERVICES"),
    Variable("REDIS_URL", None, help="Redis URL; required unless EMBEDDED_SERVICES"),
    Variable("EMBEDDED_SERVICES", False, _parse_bool, "embedded Postgres/Redis for unset URLs (make run)"),
    Variable("REDIS_CLUSTER", False, _parse_bool, "Redis Cluster client (also chosen by a redis+cluster:// URL)"),
    Variable("REDIS_SSL_CERT_REQS", "required", _choice("none", "optional", "required"), "rediss:// certificate check"),
    Variable("REDIS_SSL_CA_CERTS", None, _parse_readable_file, "PEM CA bundle for rediss:// (a private CA)"),
    Variable("TRUSTED_PROXY_COUNT", 0, _parse_positive_int, "proxies appending X-Forwarded-For; 0 = socket address"),
    Variable("OPENROUTER_API_KEY", None, help="key the gateway uses upstream"),
    Variable("OPENROUTER_BASE_URL", OPENROUTER_DEFAULT_BASE_URL, help="upstream API base"),
    Variable("OPENROUTER_TIMEOUT_SECONDS", 60.0, _parse_positive_float, "upstream read timeout"),
    Variable("UPSTREAM_RETRIES", 1, _parse_positive_int, "retries of a call upstream answered 429/502/503"),
    Variable("ADMIN_API_KEY", None, help="bootstrap admin key (embedded run generates one)"),
    Variable("KEY_HASH_SECRET", None, help="HMAC secret for API-key hashes (required with DATABASE_URL)"),
    Variable("SECRET_KEY", None, help="Flask session secret (defaults to a value derived from KEY_HASH_SECRET)"),
    Variable("LOG_LEVEL", "info", _choice("error", "warning", "info", "debug")),
    Variable("LOG_FORMAT", "text", _choice("json", "text")),
    Variable("HOST", "0.0.0.0", help="address gunicorn binds (make run: 127.0.0.1 unless set)"),
    Variable("PORT", 8000, _parse_positive_int),
    Variable("WEB_CONCURRENCY", 2, _parse_positive_int, help="gunicorn worker processes"),
    Variable("WEB_WORKER_CLASS", "gevent", _choice("gevent", "gthread"), "gevent: a waiting request costs a greenlet"),
    Variable("WEB_WORKER_CONNECTIONS", 2000, _parse_positive_int, help="gevent: open connections per worker"),
    Variable("WEB_THREADS", 8, _parse_positive_int, help="gthread only: threads per gunicorn worker"),
    Variable("MAX_REQUEST_BYTES", 4 * 1024 * 1024, _parse_positive_int, help="larger bodies get 413 unread"),
    Variable("CLIENT_HEADER_TIMEOUT_SECONDS", 5, _parse_positive_int, "request line and headers; keep-alive idle"),
    Variable("CLIENT_BODY_TIMEOUT_SECONDS", 15, _parse_positive_int, help="to receive a whole request body"),
    Variable("MAX_STREAM_SECONDS", 600, _parse_positive_int, help="a stream is cut (and settled) after this"),
    Variable("UPSTREAM_MAX_CONCURRENCY", 2048, _parse_positive_int, help="upstream calls per instance"),
    Variable("UPSTREAM_QUEUE_SECONDS", 5.0, _parse_positive_float, help="wait for an upstream slot, then 503"),
    Variable("MODEL_CACHE_TTL_SECONDS", 300, _parse_positive_int),
    Variable("DB_POOL_MAX", 12, _parse_positive_int, help="connections per process"),
    Variable("DB_POOL_TIMEOUT_SECONDS", 5.0, _parse_positive_float, help="wait for a free connection, then 503"),
    Variable("REDIS_POOL_MAX", 50, _parse_positive_int, help="Redis connections per process"),
    Variable("DB_STATEMENT_TIMEOUT_MS", 5000, _parse_positive_int),
    Variable("DB_CONNECT_TIMEOUT_SECONDS", 2, _parse_positive_int),
    Variable(
        "DB_PREPARED_STATEMENTS", True, _parse_bool, "prepare hot-path statements; false behind transaction pooling"
    ),
    Variable("SLOW_QUERY_MS", 200, _parse_positive_int, help="queries slower than this are logged"),
    Variable("DEFAULT_MAX_TOKENS", 1024, _parse_positive_int, help="output limit held and sent when none is set"),
    Variable("BILLING_MARKUP", Decimal(1), _parse_markup, help="users pay upstream's reported cost times this"),
    Variable("DEFAULT_PLAN", "trial", help="plan given to new users"),
    Variable("CACHE_HIT_PRICE_FACTOR", Decimal(0), _parse_fraction, "a cache hit pays this times the original"),
    Variable("CACHE_MAX_TTL_SECONDS", 86400, _parse_positive_int, help="the longest X-Gateway-Cache-TTL honoured"),
    Variable("CACHE_MAX_ENTRY_BYTES", 1024 * 1024, _parse_positive_int, help="larger answers are not cached"),
    Variable("PAYLOAD_MAX_BYTES", 64 * 1024, _parse_positive_int, help="a logged request or response body is cut here"),
    Variable("PAYLOAD_RETENTION_DAYS", 30, _parse_positive_int, help="logged payloads are deleted after this"),
    Variable("PAYLOAD_REDACT_PATTERNS", (), _parse_patterns, "JSON list of regexes also redacted from payloads"),
    Variable("RATE_LIMIT_FAIL_CLOSED", False, _parse_bool, "reject with 503 when Redis is down"),
    Variable("AUTH_FAILURE_LIMIT", "20 per 5 minutes", help="per-IP auth failures before a block"),
    Variable("AUTH_BLOCK_SECONDS", 900, _parse_positive_int, help="how long a brute-forcing IP is blocked"),
    Variable("ADMIN_RATE_LIMIT", "600 per minute", help="per-IP limit on /admin/*"),
    Variable("USER_RATE_LIMIT", "120 per minute", help="per-key limit on /user/*"),
    Variable("MAX_KEYS_PER_USER", 50, _parse_positive_int, help="active keys a user may hold; 0 = no cap"),
    Variable("METRICS_TOKEN", None, help="bearer token required by /metrics when set (start-up warns when unset)"),
    Variable("PROMETHEUS_MULTIPROC_DIR", None, help="shared metrics dir for gunicorn workers"),
    Variable("ALERT_WEBHOOK_URL", None, help="Slack-compatible webhook for alerts"),
    Variable("ALERT_COOLDOWN_SECONDS", 900, _parse_positive_int),
    Variable("ALERT_ERROR_RATE_PERCENT", 5.0, _parse_positive_float),
    Variable("ALERT_P95_LATENCY_MS", 5000, _parse_positive_int),
    Variable("ALERT_CPU_PERCENT", 90.0, _parse_positive_float),
    Variable("ALERT_MEMORY_PERCENT", 90.0, _parse_positive_float),
    Variable("ALERT_POOL_SATURATION_PERCENT", 90.0, _parse_positive_float),
    Variable("ALERT_AUTH_FAILURES_5M", 100, _parse_positive_int),
    Variable("ALERT_RATE_LIMITED_5M", 500, _parse_positive_int),
    Variable("SUSPICIOUS_ACTIVITY_FACTOR", 5.0, _parse_positive_float, "times a user's 7-day hourly average"),
    Variable("SUSPICIOUS_MIN_REQUESTS_PER_HOUR", 100, _parse_positive_int, "never flagged at or below this"),
    Variable("SUSPICIOUS_MIN_COST_PER_HOUR", Decimal("5.00"), _parse_decimal, "USD; never flagged at or below this"),
    Variable("BACKUP_DIR", None, help="where backup_verification writes pg_dump files"),
    Variable("BACKUP_MAX_AGE_HOURS", 26, _parse_positive_int),
    Variable("BACKUP_MODE", "dump", _choice("dump", "verify"), "dump: take a backup and verify it; verify: only check"),
    Variable("BACKUP_KEEP", 7, _parse_positive_int, help="newest dumps kept in BACKUP_DIR (0 keeps all)"),
    Variable("USAGE_RETENTION_DAYS", 400, _parse_positive_int),
    Variable("AUDIT_RETENTION_DAYS", 400, _parse_positive_int),
    Variable("JOB_RUN_RETENTION_DAYS", 30, _parse_positive_int),
    Variable("SCHEDULER_INTERVAL_SCALE", 1.0, _parse_positive_float, "multiplies every job interval (tests)"),
    Variable("REFRESH_MODEL_CACHE_INTERVAL_SECONDS", 300, _parse_positive_int, "0 = not scheduled"),
    Variable("CACHE_CLEANUP_INTERVAL_SECONDS", 600, _parse_positive_int, "0 = not scheduled"),
    Variable("USAGE_ROLLUP_INTERVAL_SECONDS", 300, _parse_positive_int, "0 = not scheduled"),
    Variable("RETENTION_INTERVAL_SECONDS", 86400, _parse_positive_int, "0 = not scheduled"),
    Variable("BACKUP_VERIFICATION_INTERVAL_SECONDS", 86400, _parse_positive_int, "0 = not scheduled"),
    Variable("DB_MAINTENANCE_INTERVAL_SECONDS", 3600, _parse_positive_int, "0 = not scheduled"),
    Variable("RELEASE_STALE_HOLDS_INTERVAL_SECONDS", 300, _parse_positive_int, "0 = not scheduled"),
    Variable("EVALUATE_ALERTS_INTERVAL_SECONDS", 60, _parse_positive_int, "0 = not scheduled"),
    Variable("RESTORE_IP_BLOCKS_INTERVAL_SECONDS", 60, _parse_positive_int, "0 = not scheduled"),
    Variable("RECONCILE_GENERATIONS_INTERVAL_SECONDS", 30, _parse_positive_int, "0 = not scheduled"),
    Variable("RUN_MIGRATIONS_ON_START", True, _parse_bool),
    Variable("OIDC_ISSUER", None, _parse_issuer, "OpenID Connect issuer for dashboard sign-in; unset = off"),
    Variable("OIDC_CLIENT_ID", None, help="the gateway's client id at the OIDC provider"),
    Variable("OIDC_CLIENT_SECRET", None, help="the gateway's client secret at the OIDC provider"),
    Variable("OIDC_ALLOWED_EMAILS", (), _parse_lowercase_list, "comma-separated emails that may sign in with OIDC"),
    Variable("OIDC_ALLOWED_DOMAINS", (), _parse_lowercase_list, "comma-separated email domains that may sign in"),
    Variable("OIDC_CREATE_ADMINS", False, _parse_bool, "create an admin user on an allowed email's first sign-in"),
]


class Settings(dict):
    """Parsed settings, keyed by variable name; attribute access for readability."""

    def __getattr__(self, name):
        try:
            return self[name.upper()]
        except KeyError as exc:
            raise AttributeError(name) from exc


def load_settings(environ, overrides=None):
    """Parse every declared variable from ``environ``; ``overrides`` (already typed) win."""
    overrides = dict(overrides or {})
    settings = Settings()
    for var in VARIABLES:
        if var.name in overrides:
            settings[var.name] = overrides.pop(var.name)
            continue
        raw = environ.get(var.name)
        if raw is None or raw == "":
            settings[var.name] = var.default
            continue
        try:
            settings[var.name] = var.parse(raw)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{var.name}={raw!r} is invalid: {exc}") from exc
    settings.update(overrides)  # test-only extras (e.g. TESTING)
    if settings.DATABASE_URL and not settings.KEY_HASH_SECRET:
        raise ConfigError("KEY_HASH_SECRET must be set when DATABASE_URL points at a managed database")
    _check_oidc(settings)
    return settings


def _check_oidc(settings):
    """OIDC sign-in needs its client credentials and someone allowed to sign in: without an
    allowlist every account at the provider could become a dashboard admin."""
    if not settings.OIDC_ISSUER:
        return
    for name in ("OIDC_CLIENT_ID", "OIDC_CLIENT_SECRET"):
        if not settings[name]:
            raise ConfigError(f"{name} must be set when OIDC_ISSUER is set")
    if not (settings.OIDC_ALLOWED_EMAILS or settings.OIDC_ALLOWED_DOMAINS):
        raise ConfigError("OIDC_ALLOWED_EMAILS or OIDC_ALLOWED_DOMAINS must be set when OIDC_ISSUER is set")
