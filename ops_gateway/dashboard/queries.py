"""Reads the dashboard needs that no API service offers: its session re-check and the cached model list."""

# The signed-in user is still an active admin and the key they signed in with still works
# (revoking or rotating that key ends the dashboard sessions it opened, as it ends API use).
_SESSION_ADMIN = """
SELECT u.email FROM users u JOIN api_keys k ON k.user_id = u.id
WHERE u.id = %s AND k.id = %s AND u.role = 'admin' AND u.status = 'active'
  AND (k.status = 'active' OR (k.status = 'rotated' AND k.grace_until > now()))
  AND (k.expires_at IS NULL OR k.expires_at > now())
"""


def session_admin(cur, user_id, api_key_id):
    """The admin's email when this user may still use the dashboard with this key, else None."""
    cur.execute(_SESSION_ADMIN, (user_id, api_key_id))
    row = cur.fetchone()
    return row["email"] if row else None


def cached_models(cur):
    """The shared catalogue's models (as the last good refresh stored them), sorted by id."""
    cur.execute(
        "SELECT m->>'id' AS id, m->>'name' AS name, (m->>'context_length')::numeric AS context_length,"
        " (m->'pricing'->>'prompt')::numeric AS prompt_price,"
        " (m->'pricing'->>'completion')::numeric AS completion_price"
        " FROM model_catalog, jsonb_array_elements(models) AS m WHERE model_catalog.id = 1 ORDER BY 1"
    )
    return cur.fetchall()
