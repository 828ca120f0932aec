"""Rate-limit plumbing shared by the request path: a windowed limiter on the shared Redis."""

from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter


def init_app(app):
    """Create the ``limits`` limiter (same Redis as Flask-Limiter) used for token and per-IP windows."""
    storage = storage_from_string(app.config["RATELIMIT_STORAGE_URI"], socket_timeout=0.5, socket_connect_timeout=0.5)
    app.extensions["ops_gateway.window_limiter"] = FixedWindowRateLimiter(storage)
