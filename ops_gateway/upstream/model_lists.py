"""OpenRouter's two model lists, what the catalogue keeps of their entries, and how they merge.

OpenRouter lists its embedding models only at ``GET /embeddings/models`` and every other model at
``GET /models`` (entries of the same shape). An entry's ``endpoints`` (the /v1 endpoints that serve
it) follow from its list: the embeddings list's serve ``embeddings``; the others serve the chat
endpoints (chat, responses and messages: OpenRouter serves the Anthropic Messages API for every chat
model), unless their ``architecture.output_modalities`` say embeddings. A list that could not be
read keeps its previous entries in the merged catalogue (``merged``).
"""

from decimal import Decimal

from ops_gateway.upstream.failures import UpstreamError

CHAT_ENDPOINTS = ("chat", "responses", "messages")
UNPRICED = "-1"  # OpenRouter's sentinel for a model without a price of its own (``openrouter/auto``)
# Each list, in merge order: its name, where upstream serves it, and the client's method reading it.
LISTS = (("models", "/models", "list_models"), ("embeddings", "/embeddings/models", "list_embedding_models"))


def read_lists(client):
    """Read every list through the OpenRouter client: ({name: normalised entries} of the lists read,
    {name: UpstreamError} of the others, its message naming the list)."""
    entries, failures = {}, {}
    for name, path, method in LISTS:
        try:
            listed = getattr(client, method)()
            entries[name] = [normalise(m, name) for m in listed if isinstance(m, dict) and m.get("id")]
        except UpstreamError as exc:
            failures[name] = UpstreamError(exc.kind, f"GET {path}: {exc.message}", exc.status, exc.retry_after)
        except (KeyError, ValueError, ArithmeticError) as exc:
            failures[name] = UpstreamError("unavailable", f"GET {path}: malformed model list: {exc}")
    return entries, failures


def normalise(raw_model, list_name):
    """Keep what the gateway needs from an entry of list_name; prices as decimal strings."""
    pricing = raw_model.get("pricing") or {}
    return {
        "id": raw_model["id"],
        "name": raw_model.get("name") or raw_model["id"],
        "context_length": raw_model.get("context_length"),
        "created": raw_model.get("created"),
        "pricing": {"prompt": _price_text(pricing.get("prompt")), "completion": _price_text(pricing.get("completion"))},
        "endpoints": _serving_endpoints(raw_model, list_name),
    }


def merged(entries, previous):
    """The catalogue: each list's entries (by name) in LISTS order, or, for a list not read, its
    entries in ``previous`` (the stored catalogue). A model in both lists serves both's endpoints."""
    by_id = {}
    for name, _, _ in LISTS:
        listed = entries[name] if name in entries else [m for m in with_endpoints(previous) if _list_of(m) == name]
        for model in listed:
            known = by_id.get(model["id"], {"endpoints": []})
            by_id[model["id"]] = {**model, "endpoints": list(dict.fromkeys(known["endpoints"] + model["endpoints"]))}
    return list(by_id.values())


def with_endpoints(models):
    """The stored entries, those stored before endpoints were recorded serving the chat endpoints."""
    return [model if "endpoints" in model else {**model, "endpoints": list(CHAT_ENDPOINTS)} for model in models]


def _serving_endpoints(raw_model, list_name):
    """The /v1 endpoints an entry of list_name serves (see the module's docstring)."""
    architecture = raw_model.get("architecture")
    modalities = architecture.get("output_modalities") if isinstance(architecture, dict) else None
    if list_name == "embeddings" or (isinstance(modalities, list) and "embeddings" in modalities):
        return ["embeddings"]
    return list(CHAT_ENDPOINTS)


def _list_of(model):
    """The list a stored entry came from: the embeddings list if it serves embeddings."""
    return "embeddings" if "embeddings" in model["endpoints"] else "models"


def _price_text(value):
    """A listed per-token price as a decimal string; a missing one is unpriced, not free."""
    return UNPRICED if value is None or value == "" else f"{Decimal(str(value)):f}"
