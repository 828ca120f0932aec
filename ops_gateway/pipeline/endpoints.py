"""The metered /v1 endpoints: chat completions, embeddings, the Responses API and the Anthropic
Messages API.

Each is held, admitted, called and settled by the same pipeline (``completion.Completion``);
what differs is here: the scope a key needs, the shape of the body that bounds its cost
(``pricing.RequestShape``), how upstream reports its usage, and which OpenRouter client
methods call it. Every call asks OpenRouter for its own accounting (``usage.include``): its
reported cost is what is charged; and carries the output limit that was held.
"""

from dataclasses import dataclass

from ops_gateway.billing import pricing


@dataclass(frozen=True)
class Endpoint:
    """One metered /v1 endpoint."""

    name: str  # usage_records.endpoint
    scope: str  # the key scope it needs
    shape: pricing.RequestShape
    prompt_fields: tuple  # upstream usage's prompt token fields, summed (cache reads and writes too)
    output_field: str | None  # ... its output token field (None: no output)
    call: str  # the OpenRouter client's method for a plain call
    stream_call: str | None = None  # ... for a streamed one (None: the endpoint does not stream)
    operation: str = "chat"  # its OpenTelemetry gen_ai.operation.name

    def usage(self, reported):
        """Upstream's usage as ``prompt_tokens``/``completion_tokens``/``cost`` (None: none reported)."""
        if not isinstance(reported, dict):
            return None
        counts = [reported.get(field) for field in self.prompt_fields]
        counted = [count for count in counts if isinstance(count, int) and not isinstance(count, bool)]
        return {
            "prompt_tokens": sum(counted) if counted else None,
            "completion_tokens": reported.get(self.output_field) if self.output_field else 0,
            "cost": reported.get("cost"),
        }

    def payload(self, body, stream, output_limit):
        """The body sent upstream: the caller's, asking for usage accounting (and, for a chat
        stream, the final usage chunk), its output limited to ``output_limit``, what was held:
        a missing limit is set to it and a larger one lowered, so the model cannot answer past
        the hold."""
        asked = body.get("usage")
        payload = {**body, "usage": {**(asked if isinstance(asked, dict) else {}), "include": True}}
        limits = self.shape.output_limits
        if limits:
            present = [field for field in limits if body.get(field)] or [limits[0]]
            payload.update({field: min(body.get(field) or output_limit, output_limit) for field in present})
        if self.stream_call:
            payload["stream"] = stream
        if stream and self is CHAT:
            payload["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
        return payload


CHAT = Endpoint(
    "chat",
    "chat:write",
    pricing.CHAT,
    ("prompt_tokens",),
    "completion_tokens",
    "chat_completion",
    "stream_chat_completion",
)
EMBEDDINGS = Endpoint(
    "embeddings", "embeddings:write", pricing.EMBEDDINGS, ("prompt_tokens",), None, "embeddings", operation="embeddings"
)
RESPONSES = Endpoint(
    "responses",
    "responses:write",
    pricing.RESPONSES,
    ("input_tokens",),
    "output_tokens",
    "responses",
    "stream_responses",
)
# The Anthropic Messages API (Claude Code): input_tokens excludes the prompt cache's reads and
# writes, which upstream bills as prompt too.
MESSAGES = Endpoint(
    "messages",
    "messages:write",
    pricing.MESSAGES,
    ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"),
    "output_tokens",
    "messages",
    "stream_messages",
)
METERED = (CHAT, EMBEDDINGS, RESPONSES, MESSAGES)
ENDPOINT_NAMES = tuple(endpoint.name for endpoint in METERED)  # usage_records.endpoint's values
