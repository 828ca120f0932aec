"""API-key lifecycle: create, list, update, rotate, revoke — each audited in its transaction."""

import ipaddress
from datetime import UTC, datetime, timedelta

from flask import current_app

from ops_gateway.accounts import audit, keys, model_access, queries
from ops_gateway.billing import budgets
from ops_gateway.core.errors import Conflict, Forbidden, NotFound

SCOPES = ("models:read", "chat:write", "embeddings:write", "responses:write", "usage:read", "keys:manage")


def _hash(full_key):
    return keys.hash_key(current_app.config["KEY_HASH_SECRET"], full_key)


def _networks(ip_allowlist):
    """Allowlist entries in canonical network form ("10.0.0.1/8" -> "10.0.0.0/8"), as Postgres cidr wants."""
    return [str(ipaddress.ip_network(entry, strict=False)) for entry in ip_allowlist]


def _insert(cur, user_id, name, environment, expires_at, ip_allowlist, scopes, models=()):
    full_key = keys.generate_key(environment)
    prefix, last4 = keys.display_parts(full_key)
    networks = _networks(ip_allowlist)
    row = queries.insert_key(
        cur, user_id, name, environment, _hash(full_key), prefix, last4, scopes, networks, expires_at, models
    )
    if row is None:
        raise Conflict(f"you already have an active key named {name!r}", code="key_name_taken")
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
        raise Forbidden(message, {"lacking": lacking, "granter_scopes": list(granter_scopes)}, code="scope_escalation")


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
    granter_scopes=(),
    allowed_models=None,
    granter_models=(),
):
    """Create a key; return (row, full key) — the only time the full key exists outside the client.

    ``granter_scopes`` and ``granter_models`` are the acting key's: the new key's scopes and
    models must be within them (``check_grant``, ``model_access.check_grant``); not given
    (None) means the acting key's own.
    """
    scopes = list(granter_scopes or ()) if scopes is None else scopes
    allowed_models = list(granter_models or ()) if allowed_models is None else allowed_models
    check_grant(granter_scopes, scopes)
    model_access.check_grant(granter_models, allowed_models)
    check_key_cap(cur, user_id)
    expires_at = _expiry(expires_in_days)
    row, full_key = _insert(cur, user_id, name, environment, expires_at, ip_allowlist, scopes, allowed_models)
    audit.record(
        cur, "create", actor, user_id, row["id"], {"name": name, "key": keys.mask(row["prefix"], row["last4"])}
    )
    return row, full_key


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


def update_key(cur, user_id, key_id, changes, actor, granter_scopes=(), granter_models=()):
    """Rename, change the allowlist, expiry, scopes, models or budget of an active key.

    The key and its new scopes must be within the acting key's ``granter_scopes`` (a scoped key
    cannot loosen the allowlist or expiry of a more powerful one); an expired key's expiry is final.
    """
    row = get_key(cur, user_id, key_id, for_update=True)
    if row["status"] != "active":
        raise Conflict("only active keys can be changed", code="api_key_inactive")
    check_grant(granter_scopes, row["scopes"], "a key cannot change a key with scopes it does not have")
    model_access.check_grant(granter_models, row["allowed_models"])
    if "scopes" in changes:
        check_grant(granter_scopes, changes["scopes"])
    if "allowed_models" in changes:
        model_access.check_grant(granter_models, changes["allowed_models"])
    if "expires_in_days" in changes and _expired(row):
        raise Conflict("an expired key stays expired; create a new key", code="api_key_inactive")
    columns = {column: changes[column] for column in ("name", "scopes", "allowed_models") if column in changes}
    if "ip_allowlist" in changes:
        columns["ip_allowlist"] = _networks(changes["ip_allowlist"])
    if "expires_in_days" in changes:
        columns["expires_at"] = _expiry(changes["expires_in_days"])
    if columns and not queries.update_key(cur, key_id, columns):
        raise Conflict("you already have an active key with that name", code="key_name_taken")
    if budgets.apply_changes(cur, "key", key_id, changes, user_id) or columns:
        audit.record(cur, "update", actor, user_id, key_id, audit_safe(changes))
    return get_key(cur, user_id, key_id)


def audit_safe(changes):
    """Changes as JSON-friendly values for the audit row."""
    return {k: (v if isinstance(v, (str, int, type(None))) else _json_safe(v)) for k, v in changes.items()}


def _json_safe(value):
    return [_json_safe(item) for item in value] if isinstance(value, list) else str(value)


def rotate_key(cur, user_id, key_id, actor, grace_seconds=0, granter_scopes=(), granter_models=()):
    """Replace a key: the old one stops now (or when the grace ends); return (new row, full key).

    The replacement keeps the old key's scopes and is revealed to the caller, so the acting key
    must hold them all (``check_grant``), as if it were creating that key.
    """
    old = get_key(cur, user_id, key_id, for_update=True)
    if old["status"] != "active":
        raise Conflict("only active keys can be rotated", code="api_key_inactive")
    check_grant(granter_scopes, old["scopes"])
    model_access.check_grant(granter_models, old["allowed_models"])
    if _expired(old):
        # The replacement would inherit the expiry and be born unusable.
        raise Conflict("an expired key cannot be rotated; create a new key", code="api_key_inactive")
    grace_until = queries.mark_rotated(cur, key_id, grace_seconds)
    new, full_key = _insert(
        cur,
        user_id,
        old["name"],
        old["environment"],
        old["expires_at"],
        old["ip_allowlist"],
        old["scopes"],
        old["allowed_models"],
    )
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
        cur, "delete", actor, user_id, key_id, {"forced": force, "key": keys.mask(row["prefix"], row["last4"])}
    )
    return get_key(cur, user_id, key_id)


def find_by_full_key(cur, full_key):
    """The key row for a full key (by its hash), or None."""
    if not keys.KEY_PATTERN.match(full_key or ""):
        return None
    return queries.key_by_hash(cur, _hash(full_key))
