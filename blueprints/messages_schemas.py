"""Schemas of /v1/messages (the Anthropic Messages API, as Claude Code and the anthropic SDK send
it); fields not listed (tool_choice, thinking, metadata, ...) pass through to OpenRouter."""

import marshmallow as ma

from blueprints.proxy_schemas import fallback_models


class _SystemPrompt(ma.fields.Raw):
    """A string, or a list of text blocks (with cache_control, as Claude Code sends it)."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str) or (isinstance(value, list) and all(isinstance(block, dict) for block in value)):
            return value
        raise ma.ValidationError("must be a string or a list of content blocks")


class AnthropicInputMessageSchema(ma.Schema):
    """One message: a role and text or a list of content blocks (text, image, tool_use, tool_result)."""

    class Meta:
        unknown = ma.INCLUDE

    role = ma.fields.String(required=True, validate=ma.validate.OneOf(["user", "assistant"]))
    content = ma.fields.Raw(required=True, metadata={"oneOf": [{"type": "string"}, {"type": "array"}]})

    @ma.validates("content")
    def _text_or_blocks(self, value, **kwargs):
        if isinstance(value, str):
            return
        if not isinstance(value, list):
            raise ma.ValidationError("must be a string or a list of content blocks")
        for block in value:
            if not isinstance(block, dict) or not isinstance(block.get("type"), str):
                raise ma.ValidationError('each content block must be an object with a string "type"')


class CountTokensRequestSchema(ma.Schema):
    """What /v1/messages/count_tokens counts: the prompt of a Messages request."""

    class Meta:
        unknown = ma.INCLUDE

    model = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=200))
    messages = ma.fields.List(
        ma.fields.Nested(AnthropicInputMessageSchema), required=True, validate=ma.validate.Length(min=1)
    )
    system = _SystemPrompt(metadata={"oneOf": [{"type": "string"}, {"type": "array"}]})
    tools = ma.fields.List(ma.fields.Dict())


class MessagesRequestSchema(CountTokensRequestSchema):
    """Anthropic Messages API request: a prompt, and ``max_tokens``, required as Anthropic requires it."""

    max_tokens = ma.fields.Integer(required=True, validate=ma.validate.Range(min=1, max=1_000_000))
    stream = ma.fields.Boolean(load_default=False)
    temperature = ma.fields.Float(validate=ma.validate.Range(min=0, max=1))
    models = fallback_models()


class CountTokensSchema(ma.Schema):
    """The prompt's token count (the gateway's bound: at most this many)."""

    input_tokens = ma.fields.Integer(required=True)


class AnthropicUsageSchema(ma.Schema):
    """Token usage of a message."""

    class Meta:
        unknown = ma.INCLUDE

    input_tokens = ma.fields.Integer()
    output_tokens = ma.fields.Integer()
    cache_creation_input_tokens = ma.fields.Integer(allow_none=True)
    cache_read_input_tokens = ma.fields.Integer(allow_none=True)


class AnthropicMessageSchema(ma.Schema):
    """Anthropic message object (upstream fields, content blocks included, passed through)."""

    class Meta:
        unknown = ma.INCLUDE

    id = ma.fields.String()
    type = ma.fields.String()
    role = ma.fields.String()
    model = ma.fields.String()
    content = ma.fields.List(ma.fields.Dict())
    stop_reason = ma.fields.String(allow_none=True)
    usage = ma.fields.Nested(AnthropicUsageSchema)


class AnthropicErrorDetailSchema(ma.Schema):
    """Anthropic's error object, with the gateway's own code and details."""

    type = ma.fields.String(metadata={"description": "Anthropic's error type for the status"})
    message = ma.fields.String()
    code = ma.fields.String(allow_none=True, metadata={"description": "the gateway's machine-readable slug"})
    details = ma.fields.Dict()


class AnthropicErrorSchema(ma.Schema):
    """An error of the Messages API routes, in Anthropic's shape (the SDK raises its typed errors)."""

    type = ma.fields.String(metadata={"enum": ["error"]})
    error = ma.fields.Nested(AnthropicErrorDetailSchema)
    request_id = ma.fields.String(allow_none=True)
