"""The fake's model catalogue, its exact prices and the JSON of reported costs.

Entries carry ``architecture.output_modalities`` as OpenRouter's lists do: ``["text"]`` for chat
models, ``["embeddings"]`` for embedding models. OpenRouter lists them apart, and so does the fake:
``GET /models`` the chat models only (MODELS_BODY), ``GET /embeddings/models`` the embedding models
only (EMBEDDING_MODELS_BODY), each ``{"data": [...]}`` of entries of the same shape. MODELS holds
every model, for the fake's own checks and for tests.

``openrouter/auto`` is listed as OpenRouter lists it: priced ``"-1"`` (no price of its own), serving
chat and the Responses API. A request for it is answered by the model the ``auto_routes_to`` switch
names, and billed at that model's price (``routes``). PRICES holds the priced models only, so a
router can never be priced by mistake.
"""

import json
from decimal import Context, Decimal

_CHAT = {"input_modalities": ["text"], "output_modalities": ["text"]}
_EMBEDDINGS = {"input_modalities": ["text"], "output_modalities": ["embeddings"]}
UNPRICED = "-1"  # OpenRouter's price for a router: the routed model's price applies

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
        ("openrouter/auto", "Auto Router", 2000000, _CHAT, UNPRICED, UNPRICED),
    ]
]
ROUTERS = frozenset(m["id"] for m in MODELS if UNPRICED in m["pricing"].values())
# Per-token prices as Decimal from the catalogue's own strings, so that the reported cost is exactly
# what a client computes from the catalogue.
PRICES = {
    model["id"]: (Decimal(model["pricing"]["prompt"]), Decimal(model["pricing"]["completion"]))
    for model in MODELS
    if model["id"] not in ROUTERS
}
MODEL_IDS = frozenset(m["id"] for m in MODELS)
EMBEDDING_MODELS = frozenset(m["id"] for m in MODELS if "embeddings" in m["architecture"]["output_modalities"])
CHAT_MODELS = MODEL_IDS - EMBEDDING_MODELS  # routers included: they serve chat and the Responses API
PROVIDERS = {model["id"]: model["name"].partition(":")[0] for model in MODELS}
MODELS_BODY = json.dumps({"data": [m for m in MODELS if m["id"] in CHAT_MODELS]}).encode()
EMBEDDING_MODELS_BODY = json.dumps({"data": [m for m in MODELS if m["id"] in EMBEDDING_MODELS]}).encode()
# Where dumps_with_cost writes the cost: a string value no real data contains.
COST_PLACEHOLDER = "\0cost\0"
# Enough digits for any tokens x price x multiplier product: the cost stays exact, never rounded.
_EXACT = Context(prec=80)


def cost(model_id, prompt_tokens, completion_tokens, multiplier=1):
    """The tokens' price in USD times multiplier, exact: Decimal arithmetic on the catalogue's strings.

    ``model_id`` must be priced (not a router); a multiplier other than 1 (the ``cost_multiplier``
    switch, a JSON number) counts by its shortest decimal spelling, as it was written.
    """
    prompt_price, completion_price = PRICES[model_id]
    tokens_cost = _EXACT.add(
        _EXACT.multiply(prompt_tokens, prompt_price), _EXACT.multiply(completion_tokens, completion_price)
    )
    return tokens_cost if multiplier == 1 else _EXACT.multiply(tokens_cost, Decimal(repr(multiplier)))


def usage_with_cost(usage, cost_usd):
    """A copy of ``usage`` carrying ``cost`` (when not None), to be serialised by dumps_with_cost."""
    return usage if cost_usd is None else {**usage, "cost": COST_PLACEHOLDER}


def dumps_with_cost(data, cost_usd):
    """JSON of data with the cost placeholders (see usage_with_cost) written as the Decimal's digits.

    json.dumps would pass the cost through a float; written literally, a client parsing the
    number as Decimal reads back exactly the value computed here.
    """
    text = json.dumps(data)
    return text if cost_usd is None else text.replace(json.dumps(COST_PLACEHOLDER), f"{cost_usd:f}")
