"""How a ``Completion`` ends in money: its settlement (one statement: the hold released, upstream's
cost charged, the usage row written), a stream's from what ``relay`` saw, a cache hit's at its
factor of the original, an upstream failure's (nothing), and keeping a whole answer in the
response cache. A part of ``Completion`` (its base class), kept apart so each file has one job;
it reads the request's own state and is used by nothing else.
"""

import json
import time

from flask import current_app

from ops_gateway.accounts import auth
from ops_gateway.billing import budgets, pricing, settlement
from ops_gateway.core import db
from ops_gateway.limits import rate_limits
from ops_gateway.pipeline import response_cache, routing
from ops_gateway.telemetry import metrics, payload_log, tracing


class Settling:
    """The settlement half of ``Completion``."""

    def _settle_stream(self, status, progress):
        """Settle from what ``relay`` saw: without reported usage, the whole prompt bound and one
        token per output event."""
        usage = self.endpoint.usage(progress.reported)
        prompt, completion = pricing.billable_tokens(usage, self.worst_case.prompt_bound, progress.output_events)
        self.model = routing.billed_model(self.models, progress.served_model)
        cost, generation_id = pricing.reported_cost(usage), progress.generation_id
        self._settle(status, prompt, completion, 200, upstream_cost=cost, generation_id=generation_id)

    def _answer_from_cache(self):
        """Settle a cache hit at CACHE_HIT_PRICE_FACTOR times its original (the original's tokens and
        model), log its payloads, and return the cached answer's text."""
        entry = self.cache.entry
        self.model = routing.billed_model(self.models, entry["model"])
        cost = response_cache.hit_cost(entry, current_app.config["CACHE_HIT_PRICE_FACTOR"])
        self._settle("success", entry["prompt_tokens"], entry["completion_tokens"], hit_cost=cost)
        self._log_payloads(entry["body"])
        return entry["body"]

    def _keep_in_cache(self, body_text, prompt_tokens, completion_tokens):
        """After a whole, successful answer from upstream: keep it when the caller asked for the cache."""
        if self.cache is not None and self.succeeded:
            max_bytes = current_app.config["CACHE_MAX_ENTRY_BYTES"]
            cost = self.charged or 0
            response_cache.keep(
                self.cache, body_text, self.model["id"], prompt_tokens, completion_tokens, cost, max_bytes
            )

    def _log_payloads(self, response_text):
        """Store the request's bodies when its user, org or key logs payloads (once it is settled)."""
        if self.principal["log_payloads"] and self.settled:
            request_text = json.dumps(self.body, default=str)
            payload_log.store(
                self.settlement_id, self.principal["user_id"], request_text, response_text, current_app.config
            )

    def _upstream_ms(self):
        if self.upstream_started is None:  # answered from the cache
            return None
        return (time.perf_counter() - self.upstream_started) * 1000

    def _upstream_failure(self, error):
        """Settle a failed call (it costs nothing; its payloads say why) and return the domain error to raise."""
        self._settle("error", upstream_status=error.status, error_code=error.kind)
        self._log_payloads(
            json.dumps({"error": {"code": error.kind, "status": error.status, "message": error.message}})
        )
        return error.as_domain_error()

    def _settle(
        self,
        status,
        prompt_tokens=0,
        completion_tokens=0,
        upstream_status=None,
        error_code=None,
        upstream_cost=None,
        generation_id=None,
        hit_cost=None,
    ):
        """Release the hold, charge upstream's cost (ledger, usage row, daily totals: one statement)
        and count the real tokens against the rate-limit windows, giving the concurrency slot back.

        Once the statement ran, a second call (an error after the settlement committed) does
        nothing; one after a failed statement tries again, and the database refuses a second
        settlement of the same id whatever happened. A success without a reported cost queues
        ``generation_id``'s lookup (``billing.reconciliation``).
        """
        if self.settled:
            return
        markup = current_app.config["BILLING_MARKUP"]
        cost = (
            hit_cost
            if hit_cost is not None
            else pricing.charge(self.model, status, upstream_cost, prompt_tokens, completion_tokens, markup)
        )
        reconcile = status != "error" and upstream_cost is None and isinstance(generation_id, str) and generation_id
        latency_ms = (time.perf_counter() - self.facts.started) * 1000
        upstream_latency_ms = self._upstream_ms()
        principal = self.principal
        finished = settlement.FinishedRequest(
            settlement_id=self.settlement_id,
            user_id=principal["user_id"],
            api_key_id=principal["api_key_id"],
            org_id=principal["org_id"],
            client_ip=auth.database_ip(self.facts.client_ip),
            actor=principal["actor"],
            request_id=self.facts.request_id,
            model=self.body["model"],
            served_model=None if self.model["id"] == self.body["model"] else self.model["id"],
            endpoint=self.endpoint.name,
            held=self.hold,
            hold_id=self.hold_id,
            streamed=self.streamed,
            status=status,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            cost=cost,
            latency_ms=latency_ms,
            upstream_status=upstream_status,
            error_code=error_code,
            upstream_latency_ms=upstream_latency_ms,
            upstream_cost=upstream_cost,
            markup=markup,
            generation_id=generation_id[:200] if reconcile else None,
            tags=self.tags,
            cache_hit=hit_cost is not None,
        )
        with db.statement() as cur:  # settle_request is a single statement
            settled = settlement.settle_request(cur, finished)
        self.settled = True
        self.held, self.hold_id = False, None
        if settled is None:  # another path settled this request already: nothing more to count
            return
        charged, balance, settled_budgets = settled
        metrics.observe_completion(finished, charged)
        rate_limits.charge_tokens(self.admission, prompt_tokens + completion_tokens)
        budgets.announce(principal, self.facts.request_id, settled_budgets)
        self.charged, self.balance = charged, balance
        self.latency_ms, self.upstream_latency_ms = latency_ms, upstream_latency_ms
        if self.facts.span is not None:  # the attributes are built only for a span that is exported
            tracing.annotate(self.facts.span, _span_attributes(finished, self.endpoint.operation, charged))
        self.succeeded = status == "success"
        self.billed_tokens = (prompt_tokens, completion_tokens)


def _span_attributes(finished, operation, charged):
    """The request's span attributes once settled: the GenAI semantic conventions and who paid what."""
    return {
        "gen_ai.operation.name": operation,
        "gen_ai.system": "openrouter",
        "gen_ai.request.model": finished.model,
        "gen_ai.response.model": finished.served_model or finished.model,
        "gen_ai.usage.input_tokens": finished.prompt_tokens,
        "gen_ai.usage.output_tokens": finished.completion_tokens,
        "gateway.request_id": finished.request_id,
        "gateway.user_id": finished.user_id,
        "gateway.org_id": finished.org_id,
        "gateway.api_key_id": finished.api_key_id,
        "gateway.status": finished.status,
        "gateway.cost_usd": float(charged),
        "gateway.cache_hit": finished.cache_hit,
    }
