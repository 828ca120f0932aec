"""Schemas of the OpenAI-compatible surface and the model-cache admin endpoints."""

import marshmallow as ma

from blueprints.fields import Timestamp
from ops_gateway.pipeline.endpoints import ENDPOINT_NAMES

MAX_FALLBACK_MODELS = 10


def fallback_models():
    """The ``models`` field of every metered request: at most MAX_FALLBACK_MODELS model ids (strings)."""
    return ma.fields.List(
        ma.fields.String(validate=ma.validate.Length(min=1, max=200)),
        validate=ma.validate.Length(max=MAX_FALLBACK_MODELS),
        metadata={
            "description": "OpenRouter fallbacks tried in order; the hold covers the dearest, the one "
            "that answered is billed"
        },
    )


class MessageSchema(ma.Schema):
    """One chat message; content is text or a list of content parts."""

    class Meta:
        unknown = ma.INCLUDE

    role = ma.fields.String(
        required=True, validate=ma.validate.OneOf(["system", "user", "assistant", "tool", "developer", "function"])
    )
    content = ma.fields.Raw(allow_none=True, metadata={"oneOf": [{"type": "string"}, {"type": "array"}]})

    @ma.validates("content")
    def _text_or_parts(self, value, **kwargs):
        if value is None or isinstance(value, str):
            return
        if not isinstance(value, list):
            raise ma.ValidationError("must be a string or a list of content parts")
        for part in value:
            if not isinstance(part, dict) or not isinstance(part.get("type"), str):
                raise ma.ValidationError('each content part must be an object with a string "type"')
            if "text" in part and not isinstance(part["text"], str):
                raise ma.ValidationError('a content part\'s "text" must be a string')


class ChatCompletionRequestSchema(ma.Schema):
    """OpenAI chat.completions request; fields not listed are passed through to OpenRouter."""

    class Meta:
        unknown = ma.INCLUDE

    model = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=200))
    messages = ma.fields.List(ma.fields.Nested(MessageSchema), required=True, validate=ma.validate.Length(min=1))
    stream = ma.fields.Boolean(load_default=False)
    max_tokens = ma.fields.Integer(validate=ma.validate.Range(min=1, max=1_000_000))
    max_completion_tokens = ma.fields.Integer(validate=ma.validate.Range(min=1, max=1_000_000))
    temperature = ma.fields.Float(validate=ma.validate.Range(min=0, max=2))
    top_p = ma.fields.Float(validate=ma.validate.Range(min=0, max=1))
    stream_options = ma.fields.Dict()
    models = fallback_models()
    provider = ma.fields.Dict(metadata={"description": "OpenRouter provider preferences, passed through"})


class UsageSchema(ma.Schema):
    """Token usage reported by upstream."""

    class Meta:
        unknown = ma.INCLUDE

    prompt_tokens = ma.fields.Integer()
    completion_tokens = ma.fields.Integer()
    total_tokens = ma.fields.Integer()


class ChatCompletionSchema(ma.Schema):
    """OpenAI chat.completion response (upstream fields passed through)."""

    class Meta:
        unknown = ma.INCLUDE

    id = ma.fields.String()
    object = ma.fields.String()
    created = ma.fields.Integer()
    model = ma.fields.String()
    choices = ma.fields.List(ma.fields.Dict())
    usage = ma.fields.Nested(UsageSchema)


class PricingSchema(ma.Schema):
    """USD per token, as decimal strings."""

    prompt = ma.fields.String()
    completion = ma.fields.String()


class ModelSchema(ma.Schema):
    """One model in OpenAI list format, with OpenRouter's name, context length and pricing."""

    id = ma.fields.String()
    object = ma.fields.String()
    created = ma.fields.Integer()
    owned_by = ma.fields.String()
    name = ma.fields.String()
    context_length = ma.fields.Integer(allow_none=True)
    pricing = ma.fields.Nested(PricingSchema)
    endpoints = ma.fields.List(
        ma.fields.String(metadata={"enum": list(ENDPOINT_NAMES)}),
        metadata={"description": "the /v1 endpoints that serve this model"},
    )


class ModelListSchema(ma.Schema):
    """GET /v1/models."""

    object = ma.fields.String()
    data = ma.fields.List(ma.fields.Nested(ModelSchema))


class RefreshResultSchema(ma.Schema):
    """POST /admin/refresh-models."""

    status = ma.fields.String()
    message = ma.fields.String()
    total_models = ma.fields.Integer()
    duration_ms = ma.fields.Float()
    timestamp = ma.fields.String()


class CacheInfoSchema(ma.Schema):
    """State of the shared model cache."""

    has_data = ma.fields.Boolean()
    cache_age_seconds = ma.fields.Float(allow_none=True)
    ttl_seconds = ma.fields.Integer()
    is_valid = ma.fields.Boolean()
    is_stale = ma.fields.Boolean()
    total_cached_models = ma.fields.Integer()
    last_refresh_at = Timestamp(allow_none=True)
    last_error = ma.fields.String(allow_none=True)
    last_error_at = Timestamp(allow_none=True)
    hits = ma.fields.Integer()
    misses = ma.fields.Integer()
    hit_rate = ma.fields.Float()
    refresh_count = ma.fields.Integer()
    refresh_failures = ma.fields.Integer()


class CacheStatusSchema(ma.Schema):
    """GET /admin/cache-status."""

    status = ma.fields.String()
    cache_info = ma.fields.Nested(CacheInfoSchema)
    timestamp = ma.fields.String()
