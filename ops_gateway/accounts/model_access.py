"""Which models a key may use: its own ``allowed_models``, its user's and (an org key) its org's,
each a list of exact ids or glob patterns (``openai/*``); an empty list allows every model. The
user's and the org's lists are admin-set ceilings over their keys, so a model must pass each.
"""

from fnmatch import fnmatchcase

from ops_gateway.accounts.grants import GrantRefused
from ops_gateway.core.errors import Forbidden

MAX_PATTERNS = 100
MAX_PATTERN_CHARS = 200
_OWNERS = ("key", "user", "org")  # whose lists bound a key, the key's own first


def _allows(patterns, model_id):
    return not patterns or any(fnmatchcase(model_id, pattern) for pattern in patterns)


def allowed(principal, model_id):
    """Whether the caller's key (and its user, and its org) may use ``model_id``."""
    return all(_allows(principal.get(f"{owner}_models"), model_id) for owner in _OWNERS)


def refusal(principal, model_id):
    """The 403 ``model_not_allowed`` for a model the key may not use, or None."""
    if allowed(principal, model_id):
        return None
    narrowest = next((principal[f"{owner}_models"] for owner in _OWNERS if principal.get(f"{owner}_models")), [])
    details = {"model": model_id, "allowed_models": narrowest}
    return Forbidden(f"this key may not use model {model_id!r}", details, code="model_not_allowed")


def check_grant(granter_models, models):
    """403 unless a key restricted to ``granter_models`` may give a key ``models``.

    A restricted key hands out (or changes a key to) only a non-empty subset of its own
    patterns, never "every model" (``[]``): a key cannot widen its own reach through another.
    """
    if not granter_models:
        return
    lacking = sorted(set(models) - set(granter_models)) if models else ["*"]
    if lacking:
        raise GrantRefused(
            "a key cannot grant models it may not use",
            {"lacking": lacking, "granter_models": list(granter_models)},
            code="model_escalation",
        )
