"""/v1: the OpenAI-compatible proxy (models and chat completions) for API-key holders."""

from flask import Response, g, request, stream_with_context
from flask_smorest import Blueprint

from blueprints.docs import USER_ERRORS, documents_errors
from blueprints.fields import format_money
from blueprints.proxy_schemas import ChatCompletionRequestSchema, ChatCompletionSchema, ModelListSchema
from blueprints.user_keys import require_scope
from ops_gateway import model_catalog, proxy, rate_limits
from ops_gateway.auth import authenticate

blp = Blueprint("v1", __name__, url_prefix="/v1", description="OpenAI-compatible API (bearer API key)")
request_windows = rate_limits.request_windows  # one shared budget for every /v1 route


@blp.before_request
def authenticate_and_admit():
    """Authenticate; completions also take a concurrency slot and pass quotas and token windows."""
    authenticate()
    if request.endpoint == "v1.chat_completions":
        require_scope("chat:write")
        rate_limits.admit(g.user)


@blp.teardown_request
def free_concurrency_slot(exc=None):
    """Release the slot when the response (streamed or not) is finished."""
    if g.get("user"):
        rate_limits.release_slot()


@blp.after_request
def add_rate_limit_headers(response):
    """Every /v1 response carries the request and token window headers."""
    if g.get("user") and not g.get("rate_limits_skipped") and "X-RateLimit-Limit-Requests" not in response.headers:
        try:
            response.headers.update(rate_limits.rate_limit_headers(g.user))
        except Exception:  # noqa: BLE001 - headers are advisory; never fail a served response over them
            pass
    return response


@blp.route("/models")
@blp.response(200, ModelListSchema)
@documents_errors(blp, *USER_ERRORS, 502)
@request_windows
def list_models():
    """Models offered, in OpenAI list format, from the shared cache (stale if upstream is down)."""
    require_scope("models:read")
    models = model_catalog.get_models()
    return {
        "object": "list",
        "data": [
            {
                "id": m["id"],
                "object": "model",
                "created": m.get("created") or 0,
                "owned_by": m["id"].split("/")[0],
                "name": m["name"],
                "context_length": m.get("context_length"),
                "pricing": m["pricing"],
            }
            for m in models.values()
        ],
    }


@blp.route("/chat/completions", methods=["POST"])
# An instance, not the class: webargs would build the schema (and its nested one) on every request.
@blp.arguments(ChatCompletionRequestSchema())
@blp.response(200, ChatCompletionSchema, description="chat.completion, or text/event-stream when stream=true")
@documents_errors(blp, *USER_ERRORS, 400, 402, 404, 422, 502, 504)
@request_windows
def chat_completions(body):
    """Create a chat completion (OpenAI-compatible); streams server-sent events when stream=true."""
    if body.get("stream"):
        context, events = proxy.open_stream(body)
        response = Response(stream_with_context(events), mimetype="text/event-stream")
        response.headers["Cache-Control"] = "no-cache"
        response.headers["X-Accel-Buffering"] = "no"
        response.headers["X-Gateway-Reserved"] = format_money(context["reserved"])
        return response
    result, context = proxy.complete(body)
    headers = {
        "X-Gateway-Cost": format_money(context["charged"]),
        "X-Gateway-Credits-Remaining": format_money(
            context["balance"] if context["balance"] is not None else g.user["credits"] - g.user["reserved_credits"]
        ),
        "X-Gateway-Overhead-Ms": f"{max(context['latency_ms'] - context['upstream_latency_ms'], 0):.2f}",
    }
    return result, 200, headers
