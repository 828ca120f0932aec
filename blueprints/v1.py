"""/v1: the OpenAI-compatible proxy (models and chat completions) for API-key holders."""

from flask import Response, current_app, g, request, stream_with_context
from flask_smorest import Blueprint

from blueprints.docs import USER_ERRORS, documents_errors
from blueprints.fields import format_money
from blueprints.proxy_schemas import ChatCompletionRequestSchema, ChatCompletionSchema, ModelListSchema
from ops_gateway.accounts import auth
from ops_gateway.limits import rate_limits
from ops_gateway.upstream import catalog as model_catalog
from ops_gateway.upstream import proxy

blp = Blueprint("v1", __name__, url_prefix="/v1", description="OpenAI-compatible API (bearer API key)")
# An instance, not the class: webargs would build the schema (and its nested one) on every request.
_COMPLETION_REQUEST = ChatCompletionRequestSchema()


@blp.before_request
def authenticate_and_admit():
    """Authenticate and admit (IP block, new IP, request windows: one Redis call) every /v1 request.

    Completions do it in their view instead, where the key lookup also holds their credits.
    """
    if request.endpoint == "v1.chat_completions" and request.method == "POST":
        return
    auth.authenticate_and_hold(None)
    if request.endpoint != "v1.list_models":
        rate_limits.gate(g.user, rate_limits.Mode.IP_ONLY)  # unknown /v1 paths: 404 after the key, uncounted
        return
    refusal = auth.scope_error(g.user, "models:read")
    if refusal:
        rate_limits.refuse_uncounted(g.user, refusal)
    rate_limits.gate(g.user, rate_limits.Mode.REQUESTS)


@blp.teardown_request
def free_concurrency_slot(exc=None):
    """Release a slot the settlement did not (a request that failed between admission and upstream)."""
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
def list_models():
    """Models offered, in OpenAI list format, from the shared cache (stale if upstream is down)."""
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
# Documented here, read in the view: the body is parsed before the key lookup so the credit hold
# can ride on it, and its 400/422 is raised after authentication (proxy.open_request).
@blp.doc(requestBody={"required": True, "content": {"application/json": {"schema": ChatCompletionRequestSchema}}})
@blp.alt_response(
    200, schema=ChatCompletionSchema, description="chat.completion, or text/event-stream when stream=true", success=True
)
@documents_errors(blp, *USER_ERRORS, 400, 402, 404, 422, 502, 504)
def chat_completions():
    """Create a chat completion (OpenAI-compatible); streams server-sent events when stream=true."""
    body, context = proxy.open_request(_read_completion_body)
    if context["streamed"]:
        _bound_client_writes()
        response = Response(stream_with_context(proxy.open_stream(body, context)), mimetype="text/event-stream")
        response.headers["Cache-Control"] = "no-cache"
        response.headers["X-Accel-Buffering"] = "no"
        response.headers["X-Gateway-Reserved"] = format_money(context["reserved"])
        return response
    result = proxy.complete(body, context)
    headers = {
        "X-Gateway-Cost": format_money(context["charged"]),
        "X-Gateway-Credits-Remaining": format_money(
            context["balance"] if context["balance"] is not None else g.user["credits"] - g.user["reserved_credits"]
        ),
        "X-Gateway-Overhead-Ms": f"{max(context['latency_ms'] - context['upstream_latency_ms'], 0):.2f}",
    }
    return result, 200, headers


def _bound_client_writes():
    """A stream whose client stops reading for CLIENT_BODY_TIMEOUT_SECONDS is dropped (and settled)."""
    client_socket = request.environ.get("gunicorn.socket")
    if client_socket is not None:
        client_socket.settimeout(current_app.config["CLIENT_BODY_TIMEOUT_SECONDS"])


def _read_completion_body():
    """The validated request body (unknown fields kept for upstream); raises webargs' 400/422."""
    return blp.ARGUMENTS_PARSER.parse(_COMPLETION_REQUEST, request, location="json")
