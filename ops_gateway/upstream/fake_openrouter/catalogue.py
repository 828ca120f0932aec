"""The fake's model catalogue, its exact prices and the JSON of reported costs.

Entries carry ``architecture.output_modalities`` as OpenRouter's ``GET /models`` does: ``["text"]``
for chat models, ``["embeddings"]`` for embedding models (the value OpenRouter's model schema uses).
"""

import json
from decimal import Decimal

_CHAT = {"input_modalities": ["text"], "output_modalities": ["text"]}
_EMBEDDINGS = {"input_modalities": ["text"], "output_modalities": ["embeddings"]}

MODELS = [
    {
        "id": model_id,
        "name": name,
        "context_length": context_length,
        "architecture": architecture,
        "pricing": {"prompt": prompt, "completion": completion},
    }
    for model_id, name, context_length, architecture, prompt, completion in [
        ("openai/gpt-4o-mini", "OpenAI: GPT-4o-mini", 128000, _CHAT, "0.00000015", "0.0000006"),
        ("anthropic/claude-3.5-sonnet", "Anthropic: Claude 3.5 Sonnet", 200000, _CHAT, "0.000003", "0.000015"),
        ("meta-llama/llama-3.1-8b-instruct", "Meta: Llama 3.1 8B Instruct", 131072, _CHAT, "0.00000002", "0.00000005"),
        ("google/gemini-flash-1.5", "Google: Gemini Flash 1.5", 1000000, _CHAT, "0.000000075", "0.0000003"),
        ("mistralai/mistral-7b-instruct", "Mistral: Mistral 7B Instruct", 32768, _CHAT, "0.00000003", "0.000000055"),
        ("test/free-model", "Test: Free Model", 8192, _CHAT, "0", "0"),
        ("openai/text-embedding-3-small", "OpenAI: Text Embedding 3 Small", 8192, _EMBEDDINGS, "0.00000002", "0"),
        ("openai/text-embedding-3-large", "OpenAI: Text Embedding 3 Large", 8192, _EMBEDDINGS, "0.00000013", "0"),
    ]
]
# Per-token prices as Decimal from the catalogue's own strings, so that the reported cost is exactly
# what a client computes from the catalogue.
PRICES = {
    model["id"]: (Decimal(model["pricing"]["prompt"]), Decimal(model["pricing"]["completion"])) for model in MODELS
}
EMBEDDING_MODELS = frozenset(m["id"] for m in MODELS if "embeddings" in m["architecture"]["output_modalities"])
CHAT_MODELS = frozenset(PRICES) - EMBEDDING_MODELS
MODELS_BODY = json.dumps({"data": MODELS}).encode()
_COST_PLACEHOLDER = "\0cost\0"


def cost(model_id, prompt_tokens, completion_tokens):
    """The tokens' price in USD, exact: Decimal arithmetic on the catalogue's price strings."""
    prompt_price, completion_price = PRICES[model_id]
    return prompt_tokens * prompt_price + completion_tokens * completion_price


def usage_with_cost(usage, cost_usd):
    """A copy of ``usage`` carrying ``cost`` (when not None), to be serialised by dumps_with_cost."""
    return usage if cost_usd is None else {**usage, "cost": _COST_PLACEHOLDER}


def dumps_with_cost(data, cost_usd):
    """JSON of data with the cost (see usage_with_cost) written as the Decimal's fixed-point digits.

    json.dumps would pass the cost through a float; written literally, a client parsing the
    number as Decimal reads back exactly the value computed here.
    """
    text = json.dumps(data)
    return text if cost_usd is None else text.replace(json.dumps(_COST_PLACEHOLDER), f"{cost_usd:f}")
