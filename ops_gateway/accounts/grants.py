"""What a key holds bounds what it hands out: the acting key (``Granter``), the rule for spend
caps, and the audited refusal (``GrantRefused``) shared with the scope and model rules.

A key managing keys through /user can reveal or shape any key it creates, changes or rotates, so
each grant it holds is a ceiling: its scopes (``api_keys.check_grant``), its models
(``model_access.check_grant``) and its own spend cap (``check_budget``). Admins act without a
granter, so no ceiling applies to them.
"""

from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal

from ops_gateway.accounts import queries
from ops_gateway.billing.money import format_money
from ops_gateway.core import db
from ops_gateway.core.errors import Forbidden
from ops_gateway.telemetry import audit


class GrantRefused(Forbidden):
    """A key reaching past what it holds (``scope_escalation``, ``model_escalation``,
    ``budget_escalation``); audited by ``refusals_audited``."""

    code = "grant_refused"


@dataclass(frozen=True)
class Granter:
    """The key acting on keys through /user, with the grants that bound what it may hand out."""

    actor: str
    user_id: int
    key_id: int
    scopes: tuple = ()
    models: tuple = ()

    @classmethod
    def of(cls, principal):
        """The granter behind an authenticated /user request."""
        return cls(
            principal["actor"],
            principal["user_id"],
            principal["api_key_id"],
            tuple(principal.get("scopes") or ()),
            tuple(principal.get("key_models") or ()),
        )

    def cap(self, cur):
        """This key's own spend cap as it stands (budget, budget_period, budget_alert_thresholds)."""
        return queries.key_of_user(cur, self.user_id, self.key_id)


@contextmanager
def refusals_audited(granter, target_key_id=None):
    """A transaction for a key holder's change to keys; a ``GrantRefused`` leaving it is audited.

    The refused change rolls back, so its ``grant_refused`` row is written afterwards in a
    transaction of its own (the change held the key's row lock until then).
    """
    try:
        with db.transaction() as cur:
            yield cur
    except GrantRefused as refusal:
        details = {"code": refusal.code, "target_key_id": target_key_id, **refusal.details}
        with db.transaction() as cur:
            audit.record(cur, "grant_refused", granter.actor, granter.user_id, granter.key_id, details)
        raise


def _thresholds(values):
    return {Decimal(str(value)) for value in values or ()}


def check_budget(granter_cap, cap, thresholds=True, message="a capped key cannot give a key a looser cap than its own"):
    """403 ``budget_escalation`` unless ``cap`` is at most as loose as the granter's own cap.

    A granter without a cap of its own (None, or no budget) is bounded only by its user's cap
    (``billing.budgets.apply_changes``). A capped one may give a key only a cap with a budget no
    larger than its own over the same period (so never no cap, and never its own raised) and,
    when ``thresholds`` are compared, every alert threshold of its own kept (more may be added).
    The same rule, without thresholds, keeps it from changing or rotating a key whose cap is
    looser than its own.
    """
    if granter_cap is None or granter_cap["budget"] is None:
        return
    looser = []
    if cap["budget"] is None or Decimal(cap["budget"]) > granter_cap["budget"]:
        looser.append("budget")
    if cap["budget_period"] != granter_cap["budget_period"]:
        looser.append("budget_period")
    granter_thresholds = _thresholds(granter_cap["budget_alert_thresholds"])
    if thresholds and not granter_thresholds <= _thresholds(cap["budget_alert_thresholds"]):
        looser.append("budget_alert_thresholds")
    if looser:
        granter_budget = {
            "budget": format_money(granter_cap["budget"]),
            "budget_period": granter_cap["budget_period"],
            "budget_alert_thresholds": sorted(float(value) for value in granter_thresholds),
        }
        details = {"looser": looser, "granter_budget": granter_budget}
        raise GrantRefused(message, details, code="budget_escalation")
