"""Rate limits for tests: the window headers every limited response carries, and an override set
through ``POST /admin/limit``."""

from tests.helpers import ADMIN

WINDOW_HEADERS = (
    "X-RateLimit-Limit-Requests",
    "X-RateLimit-Remaining-Requests",
    "X-RateLimit-Reset-Requests",
    "X-RateLimit-Limit-Tokens",
    "X-RateLimit-Remaining-Tokens",
    "X-RateLimit-Reset-Tokens",
    "RateLimit-Limit",
    "RateLimit-Remaining",
    "RateLimit-Reset",
)


def set_limits(client, **target_and_limits):
    """POST /admin/limit with the bootstrap key: the target (``user_id`` or ``api_key``) and its ``rate_limits``."""
    rate_limits = target_and_limits.pop("rate_limits")
    return client.post("/admin/limit", json={**target_and_limits, "rate_limits": rate_limits}, headers=ADMIN)
