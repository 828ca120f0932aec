"""Schemas of /v1/embeddings and /v1/responses (OpenAI shapes); fields not listed pass through."""

import marshmallow as ma

from blueprints.proxy_schemas import UsageSchema, fallback_models


class _TextOrList(ma.fields.Raw):
    """A string, or a non-empty list (of strings, token ids or items: upstream checks the rest)."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str) or (isinstance(value, list) and value):
            return value
        raise ma.ValidationError("must be a string or a non-empty list")


class EmbeddingsRequestSchema(ma.Schema):
    """OpenAI embeddings request."""

    class Meta:
        unknown = ma.INCLUDE

    model = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=200))
    input = _TextOrList(
        required=True, metadata={"oneOf": [{"type": "string"}, {"type": "array"}], "description": "text(s) to embed"}
    )
    encoding_format = ma.fields.String(validate=ma.validate.OneOf(["float", "base64"]))
    dimensions = ma.fields.Integer(validate=ma.validate.Range(min=1, max=100_000))
    models = fallback_models()


class EmbeddingSchema(ma.Schema):
    """One embedding."""

    class Meta:
        unknown = ma.INCLUDE

    object = ma.fields.String()
    index = ma.fields.Integer()
    embedding = ma.fields.Raw(metadata={"description": "floats, or base64 with encoding_format=base64"})


class EmbeddingsSchema(ma.Schema):
    """OpenAI embeddings response (upstream fields passed through)."""

    class Meta:
        unknown = ma.INCLUDE

    object = ma.fields.String()
    data = ma.fields.List(ma.fields.Nested(EmbeddingSchema))
    model = ma.fields.String()
    usage = ma.fields.Nested(UsageSchema)


class ResponsesRequestSchema(ma.Schema):
    """OpenAI Responses API request; tools, reasoning and the rest pass through unchanged."""

    class Meta:
        unknown = ma.INCLUDE

    model = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=200))
    input = _TextOrList(
        required=True,
        metadata={"oneOf": [{"type": "string"}, {"type": "array"}], "description": "text or input items"},
    )
    instructions = ma.fields.String(allow_none=True)
    stream = ma.fields.Boolean(load_default=False)
    max_output_tokens = ma.fields.Integer(validate=ma.validate.Range(min=1, max=1_000_000))
    tools = ma.fields.List(ma.fields.Dict())
    reasoning = ma.fields.Dict(allow_none=True)
    models = fallback_models()


class ResponseUsageSchema(ma.Schema):
    """Token usage of a response."""

    class Meta:
        unknown = ma.INCLUDE

    input_tokens = ma.fields.Integer()
    output_tokens = ma.fields.Integer()
    total_tokens = ma.fields.Integer()


class ResponseSchema(ma.Schema):
    """OpenAI response object (upstream fields, output items included, passed through)."""

    class Meta:
        unknown = ma.INCLUDE

    id = ma.fields.String()
    object = ma.fields.String()
    created_at = ma.fields.Float()
    status = ma.fields.String()
    model = ma.fields.String()
    output = ma.fields.List(ma.fields.Dict())
    usage = ma.fields.Nested(ResponseUsageSchema, allow_none=True)
