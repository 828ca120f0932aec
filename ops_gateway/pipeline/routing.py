"""OpenRouter's model fallbacks: which models a request can reach, and which one is billed.

A chat request may name fallbacks (``models``) that OpenRouter tries in order when the first is
unavailable. Every one must be offered and allowed for the key; the hold covers the dearest of
them, and the settlement bills the model upstream says answered (the response's ``model``),
recorded beside the model asked for.
"""

from ops_gateway.accounts import model_access
from ops_gateway.billing import pricing
from ops_gateway.core.errors import NotFound
from ops_gateway.upstream import catalog as model_catalog


def requested_ids(body):
    """The model asked for, then its fallbacks, each once."""
    return list(dict.fromkeys([body["model"], *(body.get("models") or [])]))


def reachable_models(body, endpoint_name):
    """The catalogue entries of every model the request can reach; 404 for one not offered at
    this endpoint (the ``endpoints`` of its entry, ``model_lists``)."""
    models = []
    for model_id in requested_ids(body):
        model = model_catalog.find_model(model_id)
        if model is None:
            raise NotFound(f"model {model_id!r} is not offered", {"model": model_id}, code="model_not_found")
        if endpoint_name not in model["endpoints"]:
            message = f"model {model_id!r} does not serve {endpoint_name} requests"
            raise NotFound(message, {"model": model_id, "endpoint": endpoint_name}, code="model_not_found")
        models.append(model)
    return models


def access_refusal(principal, body):
    """The 403 for the first reachable model the key may not use, or None."""
    for model_id in requested_ids(body):
        refusal = model_access.refusal(principal, model_id)
        if refusal:
            return refusal
    return None


def plan(body, endpoint, config):
    """(every reachable model, the one whose worst case costs most, that worst case): what is held.
    Raises ``reachable_models``' 404."""
    models = reachable_models(body, endpoint.name)
    default_max_tokens, markup = config["DEFAULT_MAX_TOKENS"], config["BILLING_MARKUP"]
    cases = [(model, pricing.worst_case(model, body, default_max_tokens, endpoint.shape, markup)) for model in models]
    model, worst_case = max(cases, key=lambda case: case[1].cost)
    return models, model, worst_case


def billed_model(models, served_id):
    """The model to bill: the one upstream says answered when the request could reach it; the
    catalogue's entry of a router's pick (``openrouter/auto`` is unpriced, see ``catalog``); else
    the one asked for (upstream may name a dated variant of it). Its prices matter only when
    upstream reports no cost."""
    model = next((model for model in models if model["id"] == served_id), None)
    if model is None and served_id and "hold_pricing" in models[0]:
        model = model_catalog.find_model(served_id)
    return model or models[0]
