"""``POST /api/v1/embeddings`` of the fake: OpenAI's shape, deterministic vectors, usage and cost.

Each input costs its UTF-8 bytes // PROMPT_BYTES_PER_TOKEN tokens (a token array: its length), at
least one. A vector has ``dimensions`` values (DEFAULT_DIMENSIONS when not asked), derived from the
input's CRC so equal inputs embed equally; ``encoding_format: "base64"`` (the openai SDK's default)
packs them as little-endian float32, as OpenAI does. The reply carries the generation's ``id`` (also
in ``X-Generation-Id``), and the generation is recorded as it is answered.
"""

import base64
import struct
import zlib

from devtools.fake_openrouter.catalogue import dumps_with_cost, usage_with_cost
from devtools.fake_openrouter.replies import JSON_HEADERS, PROMPT_BYTES_PER_TOKEN, positive_int_problem

DEFAULT_DIMENSIONS = 8
MAX_DIMENSIONS = 3072
MAX_INPUTS = 2048


def embeddings_problem(request):
    """Why an embeddings request is invalid (status, message), or None."""
    inputs = request.get("input")
    if isinstance(inputs, str) or _is_tokens(inputs):
        inputs = [inputs]
    if not isinstance(inputs, list) or not 0 < len(inputs) <= MAX_INPUTS:
        return 400, f"input must be a string, a token array or a list of 1 to {MAX_INPUTS} of them"
    if not all((isinstance(item, str) and item) or (_is_tokens(item) and item) for item in inputs):
        return 400, "each input must be a non-empty string or token array"
    problem = positive_int_problem(request, "dimensions")
    if problem:
        return problem
    if (request.get("dimensions") or 0) > MAX_DIMENSIONS:
        return 400, f"dimensions must be at most {MAX_DIMENSIONS}"
    if request.get("encoding_format", "float") not in ("float", "base64"):
        return 400, "encoding_format must be float or base64"
    return None


def embeddings_input_tokens(request):
    """The tokens of a valid request's inputs: each a quarter of its bytes (a token array: its length), at least 1."""
    return sum(_input_tokens(item) for item in _inputs(request))


def embeddings_answer(request, generation, usage_accounting):
    """The 200 reply to a valid embeddings request for generation (recorded now)."""
    dimensions = request.get("dimensions") or DEFAULT_DIMENSIONS
    packed = request.get("encoding_format") == "base64"
    data = [
        {"object": "embedding", "index": index, "embedding": _vector(item, dimensions, packed)}
        for index, item in enumerate(_inputs(request))
    ]
    tokens = generation.prompt_tokens
    generation.finish(0)
    cost_usd = generation.cost(0) if usage_accounting else None
    usage = usage_with_cost({"prompt_tokens": tokens, "total_tokens": tokens}, cost_usd)
    body = {"id": generation.id, "object": "list", "data": data, "model": generation.model, "usage": usage}
    return 200, (*JSON_HEADERS, ("X-Generation-Id", generation.id)), dumps_with_cost(body, cost_usd).encode()


def _inputs(request):
    """The request's inputs as a list (one string or token array is a list of one)."""
    inputs = request["input"]
    return [inputs] if isinstance(inputs, str) or _is_tokens(inputs) else inputs


def _is_tokens(value):
    """Whether value is a token array (a list of non-negative ints)."""
    return isinstance(value, list) and all(isinstance(t, int) and not isinstance(t, bool) and t >= 0 for t in value)


def _input_tokens(item):
    """One input's tokens: a token array's length, else a quarter of the text's bytes; at least 1."""
    count = len(item) if isinstance(item, list) else len(item.encode()) // PROMPT_BYTES_PER_TOKEN
    return max(count, 1)


def _vector(item, dimensions, packed):
    """A deterministic unit-ish vector for item: floats, or base64 of little-endian float32."""
    seed = zlib.crc32(repr(item).encode())
    values = [((seed >> (index % 24)) % 1000 - 500) / 1000 for index in range(dimensions)]
    return base64.b64encode(struct.pack(f"<{dimensions}f", *values)).decode() if packed else values
