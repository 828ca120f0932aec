"""The telemetry floor's alert SQL: the ``alerts`` table that alert rules fire into and resolve.

Plain functions taking the cursor first and returning rows as dicts.
"""

from psycopg2.extras import Json

from ops_gateway.core.sql_where import Where

ALERT_COLUMNS = (
    "id, rule, status, severity, message, value, threshold, details, fired_at, resolved_at, last_notified_at"
)

_UPSERT_FIRING = """
INSERT INTO alerts (rule, status, severity, message, value, threshold, details)
VALUES (%s, 'firing', %s, %s, %s, %s, %s)
ON CONFLICT (rule) WHERE status = 'firing'
DO UPDATE SET severity = EXCLUDED.severity, message = EXCLUDED.message, value = EXCLUDED.value,
              threshold = EXCLUDED.threshold, details = EXCLUDED.details
RETURNING *, (xmax = 0) AS created
"""

# Only an unannounced row, and only when the rule's last message is older than the cooldown.
_CLAIM_FIRING_MESSAGE = """
UPDATE alerts a SET notifications = 1, last_notified_at = now()
WHERE a.id = %s AND a.notifications = 0
  AND NOT EXISTS (
      SELECT 1 FROM alerts p
      WHERE p.rule = a.rule AND p.id <> a.id AND p.last_notified_at > now() - make_interval(secs => %s))
RETURNING id
"""


def upsert_firing_alert(cur, rule, severity, message, value, threshold, details):
    """The rule's firing row, opened or updated; ``created`` says whether it was opened now."""
    cur.execute(_UPSERT_FIRING, (rule, severity, message, value, threshold, Json(details)))
    return cur.fetchone()


def claim_firing_message(cur, alert_id, cooldown_seconds):
    """Mark the firing message as being sent; False when it was sent already or the rule is cooling down."""
    cur.execute(_CLAIM_FIRING_MESSAGE, (alert_id, cooldown_seconds))
    return cur.fetchone() is not None


def release_firing_message(cur, alert_id):
    """Undo a claim whose message was not delivered."""
    cur.execute("UPDATE alerts SET notifications = 0, last_notified_at = NULL WHERE id = %s", (alert_id,))


def resolve_firing_alert(cur, rule):
    """Mark the rule's firing row resolved; the row, or None when none was firing."""
    cur.execute(
        "UPDATE alerts SET status = 'resolved', resolved_at = now() WHERE rule = %s AND status = 'firing' RETURNING *",
        (rule,),
    )
    return cur.fetchone()


def count_message_sent(cur, alert_id):
    """One more message announced for this alert."""
    cur.execute(
        "UPDATE alerts SET notifications = notifications + 1, last_notified_at = now() WHERE id = %s", (alert_id,)
    )


def unannounced_alerts(cur):
    """Firing alerts no message has gone out for, oldest first."""
    cur.execute(f"SELECT {ALERT_COLUMNS} FROM alerts WHERE status = 'firing' AND notifications = 0 ORDER BY id")
    return cur.fetchall()


def firing_alerts(cur):
    """Alerts firing now, newest first."""
    cur.execute(f"SELECT {ALERT_COLUMNS} FROM alerts WHERE status = 'firing' ORDER BY fired_at DESC")
    return cur.fetchall()


def recent_alerts(cur, status=None, limit=50):
    """The newest incidents, optionally of one status."""
    where = Where().equal("status", status or None)
    cur.execute(
        f"SELECT {ALERT_COLUMNS} FROM alerts WHERE {where.sql} ORDER BY fired_at DESC LIMIT %s", where.params + [limit]
    )
    return cur.fetchall()


# The last run of every job without reading all of job_runs: a skip scan over (job, started_at).
