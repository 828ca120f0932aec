"""Alerts: one ``alerts`` row per incident, and one webhook message when it fires and one when it resolves.

``fire_alert`` is idempotent while an incident lasts (the partial unique index allows one firing
row per rule), so evaluators may call it on every check. A rule that fires again within
ALERT_COOLDOWN_SECONDS of its last message stays quiet (flapping), and is announced on a later
call once the cooldown has passed if it is still firing. Call these outside your own
transaction: each opens its own, and the webhook is never called with a row locked.
"""

import logging
import time

import requests
from flask import current_app

from ops_gateway.core import db
from ops_gateway.telemetry import alert_queries

logger = logging.getLogger("ops_gateway.app")

WEBHOOK_TIMEOUT = (3.05, 5)  # (connect, read) seconds
WEBHOOK_ATTEMPTS = 3
WEBHOOK_BACKOFF_SECONDS = 0.5


def deliver_webhook(text, url=None):
    """POST ``{"text": text}`` to ALERT_WEBHOOK_URL (Slack-compatible); True when it was accepted.

    Bounded: WEBHOOK_ATTEMPTS tries with a timeout each; 4xx other than 429 is not retried.
    """
    url = url or current_app.config["ALERT_WEBHOOK_URL"]
    if not url:
        return False
    for attempt in range(1, WEBHOOK_ATTEMPTS + 1):
        try:
            response = requests.post(url, json={"text": text}, timeout=WEBHOOK_TIMEOUT)
        except requests.RequestException as exc:
            outcome, retryable = exc.__class__.__name__, True
        else:
            if response.status_code < 300:
                return True
            outcome = f"HTTP {response.status_code}"
            retryable = response.status_code == 429 or response.status_code >= 500
        logger.warning("alert webhook failed", extra={"attempt": attempt, "outcome": outcome})
        if not retryable:
            break
        if attempt < WEBHOOK_ATTEMPTS:
            time.sleep(WEBHOOK_BACKOFF_SECONDS * attempt)
    return False


def firing_text(alert):
    """The chat line announcing a firing alert."""
    measured = ""
    if alert["value"] is not None:
        measured = f" (value {alert['value']:g}" + (
            f", threshold {alert['threshold']:g})" if alert["threshold"] is not None else ")"
        )
    return f":rotating_light: [FIRING] {alert['severity']} {alert['rule']}: {alert['message']}{measured}"


def resolved_text(alert):
    """The chat line announcing a resolution."""
    minutes = (alert["resolved_at"] - alert["fired_at"]).total_seconds() / 60
    return f":white_check_mark: [RESOLVED] {alert['rule']} after {minutes:.0f} min: {alert['message']}"


def fire_alert(rule, message, severity="warning", value=None, threshold=None, details=None, announce=True):
    """Record that ``rule`` is firing (one row per incident) and announce it once; return the row.

    The row's ``created`` is True when this call opened the incident. ``announce=False`` leaves
    the message to the next ``announce_pending`` (the evaluate_alerts job): a request that fires
    an alert must not wait on the webhook.
    """
    with db.transaction() as cur:
        alert = alert_queries.upsert_firing_alert(cur, rule, severity, message, value, threshold, details or {})
    if alert["created"]:
        logger.warning("alert firing", extra={"rule": rule, "severity": severity, "alert_message": message})
    if announce and _announce_firing(alert):
        alert["notifications"] = 1
    return alert


def announce_pending():
    """Announce every firing alert no message has gone out for; how many were delivered.

    Those are the alerts recorded without one (budget thresholds, fired on the request path),
    those whose webhook call failed and those that fired again within their cooldown.
    """
    with db.transaction() as cur:
        pending = alert_queries.unannounced_alerts(cur)
    return sum(_announce_firing(alert) for alert in pending)


def _announce_firing(alert):
    """Send the firing message unless it went out already or the rule is cooling down; whether it was delivered.

    The claim commits before the webhook call, so two processes never both send it; a failed call
    releases it, so a later call announces it.
    """
    if not current_app.config["ALERT_WEBHOOK_URL"]:
        return False
    with db.transaction() as cur:
        claimed = alert_queries.claim_firing_message(cur, alert["id"], current_app.config["ALERT_COOLDOWN_SECONDS"])
    if not claimed:
        return False
    if deliver_webhook(firing_text(alert)):
        return True
    with db.transaction() as cur:
        alert_queries.release_firing_message(cur, alert["id"])
    return False


def resolve_alert(rule):
    """Mark the rule's firing alert resolved and announce it if its firing was announced; the row or None."""
    with db.transaction() as cur:
        alert = alert_queries.resolve_firing_alert(cur, rule)
    if alert is None:
        return None
    logger.info("alert resolved", extra={"rule": rule})
    if alert["notifications"] > 0 and deliver_webhook(resolved_text(alert)):
        with db.transaction() as cur:
            alert_queries.count_message_sent(cur, alert["id"])
    return alert
