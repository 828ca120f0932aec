"""The accounts domain's SQL: users and API keys.

Plain functions taking the cursor first and returning rows as dicts. A unique-name violation
comes back as None or False (rolled back to a savepoint, so the caller's transaction goes on);
the service decides what it means.
"""

import psycopg2

from ops_gateway.core.sql_where import Where

USER_COLUMNS = (
    "id, email, username, role, status, plan, credits, reserved_credits, allowed_models,"
    " budget, budget_period, budget_alert_thresholds, log_payloads, created_at, updated_at"
)
USER_CHANGEABLE = ("status", "role", "plan", "username", "allowed_models", "log_payloads")
KEY_COLUMNS = (
    "id, user_id, name, environment, prefix, last4, scopes, ip_allowlist::text[] AS ip_allowlist, allowed_models,"
    " budget, budget_period, budget_alert_thresholds, status,"
    " expires_at, grace_until, created_at, last_used_at, revoked_at, org_id, cache_ttl_seconds, log_payloads"
)

_INSERT_USER = f"INSERT INTO users (email, username, plan, role) VALUES (%s, %s, %s, %s) RETURNING {USER_COLUMNS}"

_KEY_CASTS = {"ip_allowlist": "::cidr[]", "allowed_models": "::text[]"}  # key columns whose values need a cast

# What a rotation's replacement keeps of the key it replaces: every grant (name, scopes,
# allowlist, expiry, models, spend cap, org, cache TTL) and the cap's figures this period, so that rotating
# neither loosens a key nor resets its spend. Only the key material, status and timestamps are
# new; budget_reserved stays with the old key, whose holds in flight give it back.
_KEPT_ON_ROTATION = (
    "user_id, name, environment, scopes, ip_allowlist, expires_at, allowed_models, org_id, cache_ttl_seconds,"
    " log_payloads, budget, budget_period, budget_alert_thresholds, budget_period_start, budget_spent, budget_alerted"
)
_INSERT_REPLACEMENT = (
    f"INSERT INTO api_keys (key_hash, prefix, last4, {_KEPT_ON_ROTATION})"
    f" SELECT %s, %s, %s, {_KEPT_ON_ROTATION} FROM api_keys WHERE id = %s RETURNING {KEY_COLUMNS}"
)

_MARK_ROTATED = (
    "UPDATE api_keys SET status = 'rotated', grace_until = now() + make_interval(secs => %s)"
    " WHERE id = %s RETURNING grace_until"
)


def unless_unique_violation(cur, savepoint, statement, params):
    """Run a statement that may hit a unique index; False (rolled back to a savepoint) when it did."""
    cur.execute(f"SAVEPOINT {savepoint}")
    try:
        cur.execute(statement, params)
    except psycopg2.errors.UniqueViolation:
        cur.execute(f"ROLLBACK TO SAVEPOINT {savepoint}")
        return False
    return True


# Users


def plan_exists(cur, plan):
    """Whether a plan of this name exists."""
    cur.execute("SELECT 1 FROM plans WHERE name = %s", (plan,))
    return cur.fetchone() is not None


def insert_user(cur, email, username, plan, role):
    """The new user row, or None when the email is taken."""
    if not unless_unique_violation(cur, "create_user", _INSERT_USER, (email, username, plan, role)):
        return None
    return cur.fetchone()


def user_by_id(cur, user_id):
    """One user row, or None."""
    cur.execute(f"SELECT {USER_COLUMNS} FROM users WHERE id = %s", (user_id,))
    return cur.fetchone()


def users_page(cur, email=None, status=None, offset=0, limit=50):
    """(total, page ordered by id) of users whose email contains ``email`` and whose status is ``status``."""
    where = Where().contains("email", email).equal("status", status or None)
    cur.execute(f"SELECT count(*) AS total FROM users WHERE {where.sql}", where.params)
    total = cur.fetchone()["total"]
    cur.execute(
        f"SELECT {USER_COLUMNS} FROM users WHERE {where.sql} ORDER BY id LIMIT %s OFFSET %s",
        where.params + [limit, offset],
    )
    return total, cur.fetchall()


def update_user(cur, user_id, changes):
    """Set the given USER_CHANGEABLE columns (a dict) and updated_at."""
    assignments = ", ".join(f"{column} = %s" for column in changes)
    cur.execute(f"UPDATE users SET {assignments}, updated_at = now() WHERE id = %s", list(changes.values()) + [user_id])


def lock_user_keys(cur, user_id):
    """Serialise key creations and revocations of one user (NO KEY UPDATE: an insert's FK check goes on)."""
    cur.execute("SELECT 1 FROM users WHERE id = %s FOR NO KEY UPDATE", (user_id,))


# API keys


def insert_key(cur, columns):
    """The new key row from ``columns`` ({api_keys column: value}), or None when the user already
    has an active key of that name."""
    values = ", ".join(f"%s{_KEY_CASTS.get(column, '')}" for column in columns)
    statement = f"INSERT INTO api_keys ({', '.join(columns)}) VALUES ({values}) RETURNING {KEY_COLUMNS}"
    if not unless_unique_violation(cur, "insert_key", statement, list(columns.values())):
        return None
    return cur.fetchone()


def insert_replacement(cur, key_id, key_hash, prefix, last4):
    """The new key row replacing key ``key_id`` (already marked rotated): a copy of its grants."""
    cur.execute(_INSERT_REPLACEMENT, (key_hash, prefix, last4, key_id))
    return cur.fetchone()


def keys_of_user(cur, user_id, limit=None, cursor=None):
    """A user's keys, newest first (never the hash): all of them, or a page of ``limit`` after ``cursor``."""
    where = Where().equal("user_id", user_id).older_than_cursor(cursor)
    cur.execute(
        f"SELECT {KEY_COLUMNS} FROM api_keys WHERE {where.sql} ORDER BY created_at DESC, id DESC LIMIT %s",
        where.params + [limit],
    )
    return cur.fetchall()


def key_of_user(cur, user_id, key_id, for_update=False):
    """One of a user's keys (locked when asked), or None."""
    lock = " FOR UPDATE" if for_update else ""
    cur.execute(f"SELECT {KEY_COLUMNS} FROM api_keys WHERE id = %s AND user_id = %s{lock}", (key_id, user_id))
    return cur.fetchone()


def key_by_hash(cur, key_hash):
    """The key row with this hash, or None."""
    cur.execute(f"SELECT {KEY_COLUMNS} FROM api_keys WHERE key_hash = %s", (key_hash,))
    return cur.fetchone()


def update_key(cur, key_id, changes):
    """Set ``changes`` ({api_keys column: value}: name, scopes, ip_allowlist (networks), expiry,
    models, cache TTL, payload logging); False when the new name is taken."""
    assignments = ", ".join(f"{column} = %s{_KEY_CASTS.get(column, '')}" for column in changes)
    statement = f"UPDATE api_keys SET {assignments} WHERE id = %s"
    return unless_unique_violation(cur, "update_key", statement, list(changes.values()) + [key_id])


def mark_rotated(cur, key_id, grace_seconds):
    """Retire a key after ``grace_seconds``; its grace_until."""
    cur.execute(_MARK_ROTATED, (grace_seconds, key_id))
    return cur.fetchone()["grace_until"]


def mark_revoked(cur, key_id):
    """Revoke a key now."""
    cur.execute("UPDATE api_keys SET status = 'revoked', revoked_at = now() WHERE id = %s", (key_id,))


def count_active_keys(cur, user_id):
    """How many active keys a user has."""
    cur.execute("SELECT count(*) AS active FROM api_keys WHERE user_id = %s AND status = 'active'", (user_id,))
    return cur.fetchone()["active"]


def unusable_keys(cur, key_ids):
    """Those of ``key_ids`` that may no longer be used (revoked, expired, past grace, user or org suspended)."""
    cur.execute(
        "SELECT k.id FROM api_keys k JOIN users u ON u.id = k.user_id"
        " LEFT JOIN organizations o ON o.id = k.org_id WHERE k.id = ANY(%s)"
        " AND api_key_rejection(k.status, k.grace_until, k.expires_at, u.status, coalesce(o.status, 'active'))"
        " IS NOT NULL",
        (list(key_ids),),
    )
    return {row["id"] for row in cur.fetchall()}
