"""/v1: the OpenAI-compatible proxy (models, chat completions, embeddings, responses) and the
Anthropic Messages API (messages, count_tokens) for API-key holders."""

from flask import Response, current_app, g, request, stream_with_context
from flask_smorest import Blueprint
from werkzeug.exceptions import HTTPException

from blueprints.docs import USER_ERRORS, documents_errors
from blueprints.fields import format_money
from blueprints.guards import key_authorization
from blueprints.messages_schemas import (
    AnthropicErrorSchema,
    AnthropicMessageSchema,
    CountTokensRequestSchema,
    CountTokensSchema,
    MessagesRequestSchema,
)
from blueprints.metered_schemas import (
    EmbeddingsRequestSchema,
    EmbeddingsSchema,
    ResponseSchema,
    ResponsesRequestSchema,
)
from blueprints.proxy_schemas import ChatCompletionRequestSchema, ChatCompletionSchema, ModelListSchema, ModelSchema
from ops_gateway.accounts import model_access
from ops_gateway.billing import pricing
from ops_gateway.core.errors import NotFound
from ops_gateway.limits import rate_limits
from ops_gateway.limits.windows import REQUESTS
from ops_gateway.pipeline import access, endpoints, response_cache
from ops_gateway.pipeline.completion import Completion
from ops_gateway.upstream import catalog as model_catalog

blp = Blueprint(
    "v1",
    __name__,
    url_prefix="/v1",
    description="Chat completions, embeddings, responses and models as OpenAI's API, and Anthropic's Messages API",
)
# Instances, not the classes: webargs would build the schema (and its nested ones) on every request.
_COMPLETION_REQUEST = ChatCompletionRequestSchema()
_EMBEDDINGS_REQUEST = EmbeddingsRequestSchema()
_RESPONSES_REQUEST = ResponsesRequestSchema()
_MESSAGES_REQUEST = MessagesRequestSchema()
# The metered routes admit themselves, with their hold (``_serve``).
_METERED = ("v1.chat_completions", "v1.embeddings", "v1.responses", "v1.messages")
# The scope each /v1 route needs; any other path is only checked for the key and the IP block.
_SCOPES = {"v1.list_models": "models:read", "v1.get_model": "models:read", "v1.count_tokens": "messages:write"}
# Request headers passed on upstream: the Messages API's version and beta features.
_FORWARDED_HEADERS = ("anthropic-version", "anthropic-beta")


def _facts():
    """The request as the /v1 services need it."""
    forwarded = {name: request.headers[name] for name in _FORWARDED_HEADERS if name in request.headers}
    return access.RequestFacts(
        authorization=key_authorization(),
        client_ip=request.remote_addr,
        path=request.path,
        request_id=g.request_id,
        started=g.started,
        tags_header=request.headers.get("X-Gateway-Tags", ""),
        upstream_headers=forwarded or None,
        cache_ttl_header=request.headers.get(response_cache.TTL_HEADER, ""),
        no_store="no-store" in request.headers.get("Cache-Control", "").lower(),
        span=g.get("span"),
    )


def _open(v1_request):
    """Remember the request's owner (an ``access.Access`` or a ``Completion``) and open it."""
    g.v1_request = v1_request
    v1_request.open()


@blp.before_request
def admit_request():
    """Authenticate and admit every /v1 request but a metered one, whose view does it with its hold."""
    if request.endpoint in _METERED and request.method == "POST":
        return
    _open(access.Access(_facts(), _SCOPES.get(request.endpoint)))


@blp.teardown_request
def close_request(exc=None):
    """Let the request's owner give back what it still holds (after a stream, once it ended)."""
    v1_request = g.get("v1_request")
    if v1_request is not None:
        v1_request.close()


@blp.after_request
def add_rate_limit_headers(response):
    """Every /v1 response to a known caller carries the request and token window headers; a metered
    one its stages' times (``Server-Timing``)."""
    v1_request = g.get("v1_request")
    if isinstance(v1_request, Completion) and v1_request.upstream_started is not None:
        v1_request.clock.mark("respond")
        response.headers["Server-Timing"] = v1_request.clock.header()
    admission = v1_request.admission if v1_request is not None else None
    if admission is None or admission.principal is None or admission.skipped:
        return response
    if REQUESTS.headers[0] not in response.headers:  # a 429 for a request window carries its own
        try:
            response.headers.update(rate_limits.rate_limit_headers(admission))
        except Exception:  # noqa: BLE001 - headers are advisory; never fail a served response over them
            pass
    return response


def _model_entry(model):
    """One catalogue model in OpenAI's shape, with OpenRouter's name, context, prices and the
    endpoints that serve it."""
    return {
        "id": model["id"],
        "object": "model",
        "created": model.get("created") or 0,
        "owned_by": model["id"].split("/")[0],
        "name": model["name"],
        "context_length": model.get("context_length"),
        "pricing": model["pricing"],
        "endpoints": model["endpoints"],
    }


@blp.route("/models")
@blp.response(200, ModelListSchema)
@documents_errors(blp, *USER_ERRORS, 502)
def list_models():
    """Models offered to this key (its allowed_models), in OpenAI list format, from the shared cache
    (stale if upstream is down)."""
    principal = g.v1_request.principal
    models = model_catalog.get_models().values()
    return {"object": "list", "data": [_model_entry(m) for m in models if model_access.allowed(principal, m["id"])]}


def _model_offered_to_caller(model_id):
    """The catalogue entry of a model this key may use; 404 for any other (a model the key may
    not use is not offered to it)."""
    model = model_catalog.find_model(model_id)
    if model is None or not model_access.allowed(g.v1_request.principal, model_id):
        raise NotFound(f"model {model_id!r} is not offered", {"model": model_id}, code="model_not_found")
    return model


@blp.route("/models/<path:model_id>")
@blp.response(200, ModelSchema)
@documents_errors(blp, *USER_ERRORS, 404, 502)
def get_model(model_id):
    """One model offered to this key, in OpenAI's shape (``client.models.retrieve``); 404 for a
    model not offered or not allowed for this key."""
    return _model_entry(_model_offered_to_caller(model_id))


def _serve(endpoint, schema):
    """Parse, hold, admit, call upstream and settle one metered request; its response.

    The body is parsed before the key lookup so the credit hold can ride on it; its 400/422 is
    raised after authentication (``Completion.open``). A body over 64 KiB (or chunked) was read
    only after its key passed a lookup of its own (``body_screen``), so a wrong key never costs
    its parse.
    """
    try:
        body, invalid = blp.ARGUMENTS_PARSER.parse(schema, request, location="json"), None
    except HTTPException as error:  # webargs' 400/422, raised once the caller is known
        body, invalid = None, error
    completion = Completion(_facts(), body, invalid, endpoint)
    _open(completion)
    if completion.streamed:
        _bound_client_writes()
        g.streaming = True  # its trace span ends with the stream (request_hooks.end_request)
        response = Response(stream_with_context(_streamed(completion.stream())), mimetype="text/event-stream")
        response.headers["Cache-Control"] = "no-cache"
        response.headers["X-Accel-Buffering"] = "no"
        response.headers["X-Gateway-Reserved"] = format_money(completion.hold)
        if completion.cache:
            response.headers[response_cache.STATUS_HEADER] = completion.cache.status
        return response
    result = completion.complete()
    headers = {
        "X-Gateway-Cost": format_money(completion.charged),
        "X-Gateway-Credits-Remaining": format_money(completion.credits_remaining),
        "X-Gateway-Overhead-Ms": f"{completion.overhead_ms:.2f}",
    }
    if completion.cache:
        headers[response_cache.STATUS_HEADER] = completion.cache.status
    return result, 200, headers


def _streamed(events):
    """A stream's events; once they end (or the client left), the request's teardown may end its span."""
    try:
        yield from events
    finally:
        g.streaming = False


# What a metered route can answer besides its 200: the caller's errors, the body's, upstream's.
METERED_ERRORS = (*USER_ERRORS, 400, 402, 404, 408, 413, 422, 502, 504)


# The request headers every metered route reads, as the OpenAPI document shows them.
_METERED_HEADERS = [
    {
        "in": "header",
        "name": "X-Gateway-Tags",
        "schema": {"type": "string"},
        "description": "comma-separated tags for spend reports (or metadata.tags in the body)",
    },
    {
        "in": "header",
        "name": response_cache.TTL_HEADER,
        "schema": {"type": "integer", "minimum": 1},
        "description": "answer from (and keep in) the response cache for this many seconds, at most"
        " CACHE_MAX_TTL_SECONDS; the response says X-Gateway-Cache: hit or miss",
    },
    {
        "in": "header",
        "name": "Cache-Control",
        "schema": {"type": "string"},
        "description": "no-store: bypass the response cache (neither read nor written)",
    },
]


def _body_documented(schema):
    """The request body and headers in the OpenAPI document (the view parses the body itself, see ``_serve``)."""
    return blp.doc(
        requestBody={"required": True, "content": {"application/json": {"schema": schema}}},
        parameters=_METERED_HEADERS,
    )


@blp.route("/chat/completions", methods=["POST"])
@_body_documented(ChatCompletionRequestSchema)
@blp.alt_response(
    200, schema=ChatCompletionSchema, description="chat.completion, or text/event-stream when stream=true", success=True
)
@documents_errors(blp, *METERED_ERRORS)
def chat_completions():
    """Create a chat completion (OpenAI-compatible); streams server-sent events when stream=true."""
    return _serve(endpoints.CHAT, _COMPLETION_REQUEST)


@blp.route("/embeddings", methods=["POST"])
@_body_documented(EmbeddingsRequestSchema)
@blp.alt_response(200, schema=EmbeddingsSchema, description="a list of embeddings", success=True)
@documents_errors(blp, *METERED_ERRORS)
def embeddings():
    """Create embeddings (OpenAI-compatible); needs the embeddings:write scope."""
    return _serve(endpoints.EMBEDDINGS, _EMBEDDINGS_REQUEST)


@blp.route("/responses", methods=["POST"])
@_body_documented(ResponsesRequestSchema)
@blp.alt_response(
    200, schema=ResponseSchema, description="a response, or text/event-stream when stream=true", success=True
)
@documents_errors(blp, *METERED_ERRORS)
def responses():
    """Create a response (the OpenAI Responses API; tool calls and reasoning items pass through);
    streams its named events when stream=true; needs the responses:write scope."""
    return _serve(endpoints.RESPONSES, _RESPONSES_REQUEST)


@blp.route("/messages", methods=["POST"])
@_body_documented(MessagesRequestSchema)
@blp.alt_response(
    200, schema=AnthropicMessageSchema, description="a message, or text/event-stream when stream=true", success=True
)
@documents_errors(blp, *METERED_ERRORS, schema=AnthropicErrorSchema)
def messages():
    """Create a message (the Anthropic Messages API: Claude Code, the anthropic SDK); the key may
    come as ``x-api-key`` or ``Authorization: Bearer``; errors in Anthropic's shape; needs the
    messages:write scope."""
    return _serve(endpoints.MESSAGES, _MESSAGES_REQUEST)


@blp.route("/messages/count_tokens", methods=["POST"])
@blp.arguments(CountTokensRequestSchema)
@blp.response(200, CountTokensSchema)
@documents_errors(blp, *USER_ERRORS, 404, 422, 502, schema=AnthropicErrorSchema)
def count_tokens(body):
    """The most input tokens a Messages request can be billed for (the gateway's own bound: the
    body's bytes, the whole context with an image; OpenRouter offers no count); unmetered."""
    model = _model_offered_to_caller(body["model"])
    return {"input_tokens": pricing.prompt_bound(body, model.get("context_length"), pricing.MESSAGES)}


def _bound_client_writes():
    """A stream whose client stops reading for CLIENT_BODY_TIMEOUT_SECONDS is dropped (and settled)."""
    client_socket = request.environ.get("gunicorn.socket")
    if client_socket is not None:
        client_socket.settimeout(current_app.config["CLIENT_BODY_TIMEOUT_SECONDS"])
