"""OpenRouter faked with requests-mock for API tests: its URL and model lists, completion bodies and
SSE streams as it sends them, and one chat completion sent through the test client."""

import json

from tests.helpers import bearer

UPSTREAM = "http://openrouter.test/api/v1"
MODELS = {
    "data": [
        {
            "id": "openai/gpt-4o-mini",
            "name": "GPT-4o mini",
            "context_length": 128000,
            "pricing": {"prompt": "0.00000015", "completion": "0.0000006"},
        },
        {
            "id": "test/free-model",
            "name": "Free",
            "context_length": 4096,
            "pricing": {"prompt": "0", "completion": "0"},
        },
    ]
}
EMBEDDER = {
    "id": "openai/text-embedding-3-small",
    "name": "Embedding small",
    "context_length": 8192,
    "pricing": {"prompt": "0.00000002", "completion": "0"},
    "architecture": {"output_modalities": ["embeddings"]},
}
DEAR = {
    "id": "anthropic/claude-3.5-sonnet",
    "name": "Sonnet",
    "context_length": 200000,
    "pricing": {"prompt": "0.000003", "completion": "0.000015"},
}
CATALOGUE = {"data": [*MODELS["data"], DEAR]}  # GET /models; the embedder is listed apart, as OpenRouter does
SSE = {"Content-Type": "text/event-stream"}


def completion(prompt_tokens=10, completion_tokens=20):
    """A chat completion body from openai/gpt-4o-mini with this usage."""
    return {
        "id": "gen-1",
        "object": "chat.completion",
        "created": 1,
        "model": "openai/gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def mock_model_lists(requests_mock, models=MODELS, embedding_models=()):
    """Answer OpenRouter's two model lists through requests-mock: ``GET /models`` with models (a
    ``{"data": [...]}`` body) and ``GET /embeddings/models`` with the embedding_models entries."""
    requests_mock.get(f"{UPSTREAM}/models", json=models)
    requests_mock.get(f"{UPSTREAM}/embeddings/models", json={"data": list(embedding_models)})
    return requests_mock


def mock_openrouter(requests_mock, prompt_tokens=10, completion_tokens=20):
    """Answer the model lists and every completion (with this usage) through requests-mock."""
    mock_model_lists(requests_mock)
    requests_mock.post(f"{UPSTREAM}/chat/completions", json=completion(prompt_tokens, completion_tokens))
    return requests_mock


def chat(client, key, **body):
    """POST a one-message chat completion for openai/gpt-4o-mini with ``key``, body fields overridden."""
    payload = {
        "model": "openai/gpt-4o-mini",
        "messages": [{"role": "user", "content": "hello"}],
        "max_tokens": 50,
        **body,
    }
    return client.post("/v1/chat/completions", json=payload, headers=bearer(key))


def sse(*events):
    """A server-sent events body: each event (a dict as JSON, a string as it is) on a ``data:`` line."""
    return "".join(f"data: {e if isinstance(e, str) else json.dumps(e)}\n\n" for e in events)


def chunk(content=None, usage=None):
    """A chat completion chunk carrying ``content``, or the final one (no choices) carrying ``usage``."""
    event = {
        "id": "gen-1",
        "object": "chat.completion.chunk",
        "model": "openai/gpt-4o-mini",
        "choices": [] if usage else [{"index": 0, "delta": {"content": content}}],
    }
    if usage:
        event["usage"] = usage
    return event
