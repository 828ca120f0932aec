"""API-key lifecycle: create, list, update, rotate, revoke — each audited in its transaction."""

import ipaddress
from datetime import UTC, datetime, timedelta

from flask import current_app

from ops_gateway.accounts import grants, key_material, model_access, org_membership, queries
from ops_gateway.billing import budgets
from ops_gateway.core.errors import Conflict, NotFound
from ops_gateway.telemetry import audit

SCOPES = (
    "models:read",
    "chat:write",
    "embeddings:write",
    "responses:write",
    "messages:write",
    "usage:read",
    "keys:manage",
    "org:manage",
    "admin:read",
    "admin:write",
)


_CHANGEABLE = ("name", "scopes", "allowed_models", "cache_ttl_seconds", "log_payloads")  # set as given by update_key


def _hash(full_key):
    return key_material.hash_key(current_app.config["KEY_HASH_SECRET"], full_key)


def _networks(ip_allowlist):
    """Allowlist entries in canonical network form ("10.0.0.1/8" -> "10.0.0.0/8"), as Postgres cidr wants."""
    return [str(ipaddress.ip_network(entry, strict=False)) for entry in ip_allowlist]


def _insert(cur, columns):
    """Insert a key with ``columns`` and fresh key material; (row, full key)."""
    full_key = key_material.generate_key(columns["environment"])
    prefix, last4 = key_material.display_parts(full_key)
    row = queries.insert_key(cur, {**columns, "key_hash": _hash(full_key), "prefix": prefix, "last4": last4})
    if row is None:
        raise Conflict(f"you already have an active key named {columns['name']!r}", code="key_name_taken")
    return row, full_key


def check_grant(granter_scopes, scopes, message="a key cannot grant scopes it does not have"):
    """403 unless a key with ``granter_scopes`` may hand out ``scopes`` (to itself or another key).

    No scopes means every scope, so a key with none may grant anything, and a scoped key may
    grant only a non-empty subset of its own: never more, and never "all" (``[]``). The same
    rule keeps a scoped key from changing a key more powerful than itself (``update_key``).
    """
    if not granter_scopes:
        return
    lacking = sorted(set(SCOPES) - set(granter_scopes)) if not scopes else sorted(set(scopes) - set(granter_scopes))
    if lacking:
        message += "" if scopes else " (no scopes means every scope)"
        details = {"lacking": lacking, "granter_scopes": list(granter_scopes)}
        raise grants.GrantRefused(message, details, code="scope_escalation")


def _check_reach(cur, granter, row, verb):
    """403 unless ``granter`` holds all that key ``row`` holds (scopes, models, a cap no looser
    than its own); return the granter's own cap. No granter (an admin): no bound, None.

    Changing or rotating a key puts its powers in the granter's hands (a rotation reveals the
    replacement), so a key may only act on keys it could have created.
    """
    if granter is None:
        return None
    check_grant(granter.scopes, row["scopes"], f"a key cannot {verb} a key with scopes it does not have")
    model_access.check_grant(granter.models, row["allowed_models"])
    own_cap = granter.cap(cur)
    message = f"a capped key cannot {verb} a key whose cap is looser than its own"
    grants.check_budget(own_cap, row, thresholds=False, message=message)
    return own_cap


def _expired(row):
    return row["expires_at"] is not None and row["expires_at"] <= datetime.now(UTC)


def _expiry(expires_in_days):
    return None if expires_in_days is None else datetime.now(UTC) + timedelta(days=expires_in_days)


def create_key(
    cur,
    user_id,
    name,
    actor,
    environment="live",
    expires_in_days=None,
    ip_allowlist=(),
    scopes=None,
    allowed_models=None,
    cap=None,
    granter=None,
    org_id=None,
    cache_ttl_seconds=None,
):
    """Create a key; return (row, full key) — the only time the full key exists outside the client.

    ``org_id``: an org key, drawing on that org's credits (its user must be an active member of
    an active org: ``org_membership.check_key_org``).

    ``granter`` is the acting key (None: an admin or a new user's first key): the new key's
    scopes, models and spend cap (``cap``: budget fields) must be within its own
    (``check_grant``, ``model_access.check_grant``, ``grants.check_budget``); what is not given
    is the granter's own.
    """
    granter_scopes, granter_models = (granter.scopes, granter.models) if granter else ((), ())
    scopes = list(granter_scopes) if scopes is None else scopes
    allowed_models = list(granter_models) if allowed_models is None else allowed_models
    check_grant(granter_scopes, scopes)
    model_access.check_grant(granter_models, allowed_models)
    cap = _cap_of_new_key(cur, granter, cap or {})
    if org_id is not None:
        org_membership.check_key_org(cur, org_id, user_id)
    check_key_cap(cur, user_id)
    columns = {
        "user_id": user_id,
        "name": name,
        "environment": environment,
        "scopes": list(scopes),
        "ip_allowlist": _networks(ip_allowlist),
        "expires_at": _expiry(expires_in_days),
        "allowed_models": list(allowed_models),
        "org_id": org_id,
        "cache_ttl_seconds": cache_ttl_seconds,
    }
    row, full_key = _insert(cur, columns)
    if budgets.apply_changes(cur, "key", row["id"], cap, _ceiling(cur, row)):
        row = get_key(cur, user_id, row["id"])
    details = {"name": name, "key": key_material.mask(row["prefix"], row["last4"]), **audit_safe(cap)}
    if org_id is not None:
        details["org_id"] = org_id
    audit.record(cur, "create", actor, user_id, row["id"], details)
    return row, full_key


def _ceiling(cur, row):
    """The cap a key's own may not exceed: its member's org cap (an org key), else its user's."""
    if row["org_id"] is None:
        return "user", row["user_id"]
    return "member", org_membership.member_id(cur, row["org_id"], row["user_id"])


def _cap_of_new_key(cur, granter, fields):
    """The budget fields a new key gets: those asked for and, when the granter has a cap of its
    own, the rest from that cap, the whole within it (``grants.check_budget``)."""
    own_cap = granter.cap(cur) if granter else None
    if own_cap is None or own_cap["budget"] is None:
        return fields
    cap = {field: fields.get(field, own_cap[field]) for field in budgets.FIELDS}
    grants.check_budget(own_cap, cap)
    return cap


def check_key_cap(cur, user_id):
    """409 ``key_limit_reached`` when the user already holds MAX_KEYS_PER_USER active keys (0: no cap)."""
    cap = current_app.config["MAX_KEYS_PER_USER"]
    if not cap:
        return
    # Serialise the user's key creations (and revocations): two concurrent creations must not
    # both count cap - 1 keys and end one over the cap.
    queries.lock_user_keys(cur, user_id)
    if queries.count_active_keys(cur, user_id) >= cap:
        message = f"you already have {cap} active keys, the most allowed; revoke one first"
        raise Conflict(message, {"max_keys": cap}, code="key_limit_reached")


def list_keys(cur, user_id, limit=None, cursor=None):
    """The user's keys, newest first (no hashes): all, or a page of ``limit`` after ``cursor`` ((created_at, id))."""
    return queries.keys_of_user(cur, user_id, limit, cursor)


def get_key(cur, user_id, key_id, for_update=False):
    """One of the user's keys or a 404 (another user's key id is indistinguishable from none)."""
    row = queries.key_of_user(cur, user_id, key_id, for_update)
    if row is None:
        raise NotFound(f"API key {key_id} does not exist", code="api_key_not_found")
    return row


def update_key(cur, user_id, key_id, changes, actor, granter=None):
    """Rename, change the allowlist, expiry, scopes, models or budget of an active key.

    The key must be within the acting key's grants (``_check_reach``: a scoped or capped key
    cannot loosen the allowlist or expiry of a more powerful one), and so must what it becomes;
    an expired key's expiry is final.
    """
    row = get_key(cur, user_id, key_id, for_update=True)
    if row["status"] != "active":
        raise Conflict("only active keys can be changed", code="api_key_inactive")
    own_cap = _check_reach(cur, granter, row, "change")
    if granter and "scopes" in changes:
        check_grant(granter.scopes, changes["scopes"])
    if granter and "allowed_models" in changes:
        model_access.check_grant(granter.models, changes["allowed_models"])
    if any(field in changes for field in budgets.FIELDS):
        grants.check_budget(own_cap, {**row, **changes}, thresholds="budget_alert_thresholds" in changes)
    if "expires_in_days" in changes and _expired(row):
        raise Conflict("an expired key stays expired; create a new key", code="api_key_inactive")
    columns = {column: changes[column] for column in _CHANGEABLE if column in changes}
    if "ip_allowlist" in changes:
        columns["ip_allowlist"] = _networks(changes["ip_allowlist"])
    if "expires_in_days" in changes:
        columns["expires_at"] = _expiry(changes["expires_in_days"])
    if columns and not queries.update_key(cur, key_id, columns):
        raise Conflict("you already have an active key with that name", code="key_name_taken")
    if budgets.apply_changes(cur, "key", key_id, changes, _ceiling(cur, row)) or columns:
        audit.record(cur, "update", actor, user_id, key_id, audit_safe(changes))
    return get_key(cur, user_id, key_id)


def audit_safe(changes):
    """Changes as JSON-friendly values for the audit row."""
    return {k: (v if isinstance(v, (str, int, type(None))) else _json_safe(v)) for k, v in changes.items()}


def _json_safe(value):
    return [_json_safe(item) for item in value] if isinstance(value, list) else str(value)


def rotate_key(cur, user_id, key_id, actor, grace_seconds=0, granter=None):
    """Replace a key: the old one stops now (or when the grace ends); return (new row, full key).

    The replacement keeps every grant of the old key (``queries.insert_replacement``) and is
    revealed to the caller, so the acting key must hold them all (``_check_reach``), as if it
    were creating that key.
    """
    old = get_key(cur, user_id, key_id, for_update=True)
    if old["status"] != "active":
        raise Conflict("only active keys can be rotated", code="api_key_inactive")
    _check_reach(cur, granter, old, "rotate")
    if _expired(old):
        # The replacement would inherit the expiry and be born unusable.
        raise Conflict("an expired key cannot be rotated; create a new key", code="api_key_inactive")
    grace_until = queries.mark_rotated(cur, key_id, grace_seconds)
    full_key = key_material.generate_key(old["environment"])
    prefix, last4 = key_material.display_parts(full_key)
    new = queries.insert_replacement(cur, key_id, _hash(full_key), prefix, last4)
    audit.record(
        cur,
        "rotate",
        actor,
        user_id,
        key_id,
        {"new_key_id": new["id"], "grace_seconds": grace_seconds, "old_key_valid_until": grace_until.isoformat()},
    )
    return new, full_key


def revoke_key(cur, user_id, key_id, actor, force=False):
    """Revoke a key; refusing to remove the user's last active key unless forced."""
    # Serialise revocations per user: two concurrent requests each revoking one of the last two
    # keys would otherwise both count two active keys and leave none.
    queries.lock_user_keys(cur, user_id)
    row = get_key(cur, user_id, key_id, for_update=True)
    if row["status"] == "revoked":
        raise Conflict("the key is already revoked", code="api_key_inactive")
    if row["status"] == "active" and queries.count_active_keys(cur, user_id) <= 1 and not force:
        raise Conflict("this is your last active key; pass ?force=true to revoke it anyway", code="last_active_key")
    queries.mark_revoked(cur, key_id)
    audit.record(
        cur, "delete", actor, user_id, key_id, {"forced": force, "key": key_material.mask(row["prefix"], row["last4"])}
    )
    return get_key(cur, user_id, key_id)


def find_by_full_key(cur, full_key):
    """The key row for a full key (by its hash), or None."""
    if not key_material.KEY_PATTERN.match(full_key or ""):
        return None
    return queries.key_by_hash(cur, _hash(full_key))
