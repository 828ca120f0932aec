"""What the OpenAPI document says about the API as a whole: its description and titled tags.

flask-smorest tags each operation with its Blueprint's name, and that name is also the endpoint
prefix code relies on (``request.endpoint == "v1.chat_completions"``), so it cannot change. The
spec shows a title instead: ``TagTitles`` renames the operations' tags as they are documented, and
API_SPEC_OPTIONS declares the titled tags with each Blueprint's ``description``, replacing the
ones flask-smorest declares under the raw names.
"""

from apispec import BasePlugin

API_DESCRIPTION = """\
ops-gateway meters and relays LLM requests to OpenRouter behind an OpenAI-compatible API (and
Anthropic's Messages API), with per-user API keys, credits, budgets and rate limits.

Authenticate with `Authorization: Bearer <key>`: a user's API key for `/v1` and `/user`, an admin
user's key or the bootstrap `ADMIN_API_KEY` for `/admin`; `/health` needs no key. Every error is
`{"error": {"code", "message", "status", "details", "request_id"}}` (on `/v1/messages`, restated in Anthropic's
error shape)."""

# Blueprint name -> the title the spec shows for its tag.
TAG_TITLES = {
    "health": "Health",
    "admin_users": "Admin: users",
    "admin_keys": "Admin: users' API keys",
    "admin_orgs": "Admin: organizations",
    "org": "Organization: members and usage",
    "user": "Account: balance and API keys",
    "user_audit": "Account: API-key audit log",
    "admin_audit": "Admin: audit log",
    "admin_models": "Admin: model cache",
    "admin_limits": "Admin: plans and rate limits",
    "admin_jobs": "Admin: scheduler jobs",
    "user_monitor": "Account: usage and rate limits",
    "admin_monitor": "Admin: monitoring and alerts",
    "admin_security": "Admin: security events",
    "admin_ip_blocks": "Admin: IP blocks",
    "admin_reports": "Admin: spend reports",
    "user_usage": "Account: usage and spend",
    "admin_requests": "Admin: request log",
    "user_requests": "Account: request log",
    "metrics": "Metrics",
    "v1": "Model API (OpenAI- and Anthropic-compatible)",
}


class TagTitles(BasePlugin):
    """apispec plugin: each documented operation is tagged with its Blueprint's title, not its name."""

    def operation_helper(self, path=None, operations=None, **kwargs):
        """Swap Blueprint names for titles in the operations' tags."""
        for operation in operations.values():
            operation["tags"] = [TAG_TITLES[tag] for tag in operation["tags"]]


def init_app(app, blueprints):
    """Give the spec its description and the titled tags of ``blueprints``; before ``api.init_app``,
    which reads API_SPEC_OPTIONS (spec options' ``tags`` replace the declared list as a whole)."""
    tags = [{"name": TAG_TITLES[blp.name], "description": blp.description} for blp in blueprints]
    app.config.setdefault("API_SPEC_OPTIONS", {}).update(info={"description": API_DESCRIPTION}, tags=tags)
