"""One /v1 chat completion, from the caller's key to its settlement, as an object with its own state.

``open`` authenticates and holds the request's worst-case cost (one Postgres statement), admits
it (one Redis call) and takes an upstream slot; ``complete`` or ``stream`` calls upstream and
settles the real cost exactly once (one statement, one Redis call). Refusals come in this order:
401/403 key, 403 scope, 400/422 body, 429 (IP block, concurrency, quotas, token and request
windows), 404 unknown model, 402 credits, 503 upstream_busy. The body is read before the key
(that has no side effects) so the hold can ride on the key lookup; any refusal after the hold
gives it back, and upstream failures cost nothing. No database connection is held while
upstream answers; a stream still open after ``MAX_STREAM_SECONDS`` is cut and settled.
"""

import json
import logging
import time

from flask import current_app

from ops_gateway.accounts import auth, model_access
from ops_gateway.accounts.key_watch import OPEN_STREAMS
from ops_gateway.billing import budgets, credits, pricing, settlement
from ops_gateway.billing.money import format_money
from ops_gateway.core import db
from ops_gateway.core.errors import BadRequest, NotFound
from ops_gateway.limits import rate_limits
from ops_gateway.observability import metrics
from ops_gateway.upstream import catalog as model_catalog
from ops_gateway.upstream import slots as upstream_slots
from ops_gateway.upstream.failures import UpstreamError
from ops_gateway.upstream.tags import request_tags

logger = logging.getLogger("ops_gateway.openrouter")


class Completion:
    """One chat completion: what was asked, who asked, what is held, and how it ended."""

    def __init__(self, facts, body, invalid=None):
        """``facts``: the ``access.RequestFacts``; ``body``: the validated body, or None with
        ``invalid``, the 400/422 to raise once the caller is known."""
        self.facts = facts
        self.body = body
        self.invalid = invalid
        self.admission = rate_limits.Admission(facts.client_ip)  # the key, concurrency slot, windows
        self.model = None
        self.tags = []
        self.worst_case = None  # pricing.WorstCase: what is held
        self.held = False
        self.hold_id = None  # the hold's credit_holds row
        self.upstream_slot = None
        self.charged = self.balance = None
        self.latency_ms = self.upstream_latency_ms = None

    @property
    def principal(self):
        """The authenticated caller (None until ``open`` checked the key)."""
        return self.admission.principal

    @property
    def streamed(self):
        """Whether the client asked for server-sent events."""
        return bool(self.body.get("stream"))

    @property
    def hold(self):
        """The credits held for the worst case (None when there is no model to price)."""
        return self.worst_case.cost if self.worst_case else None

    @property
    def credits_remaining(self):
        """The balance after settlement (or, when nothing was charged, the spendable balance at the key lookup)."""
        if self.balance is not None:
            return self.balance
        return self.principal["credits"] - self.principal["reserved_credits"]

    @property
    def overhead_ms(self):
        """Time spent in the gateway rather than upstream."""
        return max(self.latency_ms - self.upstream_latency_ms, 0)

    def open(self):
        """Authenticate, hold, admit and take an upstream slot, or raise the first refusal."""
        refusal = self.invalid
        if refusal is None:
            try:
                self.tags = request_tags(self.facts.tags_header, self.body)
                self.model = model_catalog.find_model(self.body["model"])
            except (BadRequest, UpstreamError) as error:  # bad tags; a catalogue never fetched (502)
                refusal = error
        if self.model:
            self.worst_case = pricing.worst_case(self.model, self.body, current_app.config["DEFAULT_MAX_TOKENS"])
        facts = self.facts
        self.admission.principal = auth.authenticate_and_hold(
            facts.authorization, facts.client_ip, facts.path, self.hold, facts.request_id
        )
        self.held, self.hold_id = self.principal["held"], self.principal["hold_id"]
        budget_refusal = None
        try:
            if self.principal["budgeted"] and self.hold is not None:  # the key lookup did not hold
                self.held, self.hold_id, budget_refusal = budgets.hold_for_request(
                    self.principal, self.hold, self.facts.request_id
                )
            refusal = auth.scope_error(self.principal, "chat:write") or refusal
            if refusal is None:
                refusal = model_access.refusal(self.principal, self.body["model"])
            if refusal:
                rate_limits.refuse_uncounted(self.admission, refusal)
            rate_limits.gate(self.admission, rate_limits.Mode.COMPLETION)
            if self.model is None:
                model = self.body["model"]
                raise NotFound(f"model {model!r} is not offered", {"model": model}, code="model_not_found")
            if not self.held:
                raise budget_refusal or credits.payment_required(self.principal, self.model["id"], self.worst_case)
            self.upstream_slot = upstream_slots.acquire()
        except BaseException:
            self._give_back_hold()
            raise

    def _give_back_hold(self):
        if self.hold_id:
            with db.statement() as cur:
                credits.release(cur, self.hold_id)
        self.held, self.hold_id = False, None

    def complete(self):
        """Call upstream without streaming, settle, and return upstream's JSON."""
        payload = {**self.body, "stream": False, "usage": self._usage_option()}
        started = time.perf_counter()
        try:
            result = _client().chat_completion(payload)
        except UpstreamError as error:
            raise self._upstream_failure(error, (time.perf_counter() - started) * 1000) from None
        finally:
            self.upstream_slot.release()
        upstream_ms = (time.perf_counter() - started) * 1000
        prompt, completion = pricing.billable_tokens(
            result.get("usage"), self.worst_case.prompt_estimate, self.body.get("max_tokens") or 0
        )
        upstream_cost = pricing.reported_cost(result.get("usage"))
        self._settle("success", prompt, completion, 200, upstream_latency_ms=upstream_ms, upstream_cost=upstream_cost)
        return result

    def _usage_option(self):
        """The body's ``usage`` asking OpenRouter for its own accounting (``usage.cost``), which is
        stored beside ours for reconciliation."""
        asked = self.body.get("usage")
        return {**(asked if isinstance(asked, dict) else {}), "include": True}

    def stream(self):
        """Start a streaming call (its errors surface here, before any byte is sent); return the
        iterator of server-sent events, which settles when it ends."""
        stream_options = {**(self.body.get("stream_options") or {}), "include_usage": True}
        payload = {**self.body, "stream": True, "stream_options": stream_options, "usage": self._usage_option()}
        started = time.perf_counter()
        try:
            upstream = _client().stream_chat_completion(payload)
        except BaseException as error:
            self.upstream_slot.release()
            if isinstance(error, UpstreamError):
                raise self._upstream_failure(error, (time.perf_counter() - started) * 1000) from None
            raise
        return self._relay(upstream, started)

    def _relay(self, upstream, started):
        """Yield SSE events as they arrive; settle exactly once, even if the client goes away.

        A stream still open after ``MAX_STREAM_SECONDS``, or whose key was revoked (or user
        suspended) meanwhile, is cut with an error event and settled as incomplete.
        """
        reported, content_chunks, settled = None, 0, False
        cut_at = started + current_app.config["MAX_STREAM_SECONDS"]
        key_id = self.principal["api_key_id"]
        OPEN_STREAMS.watch(key_id)
        try:
            for data in upstream:
                if data == "[DONE]":
                    self._settle_stream("success", reported, content_chunks, started)
                    settled = True
                    yield f": gateway-cost={format_money(self.charged)}\n\ndata: [DONE]\n\n"
                    continue
                if '"usage"' in data:
                    reported = json.loads(data).get("usage") or reported
                elif '"content"' in data:
                    content_chunks += 1
                yield f"data: {data}\n\n"
                cut = self._cut_reason(cut_at, key_id)
                if cut:
                    logger.warning("stream cut", extra={"request_id": self.facts.request_id, "reason": cut[0]})
                    yield "data: " + json.dumps({"error": {"code": cut[0], "message": cut[1]}}) + "\n\n"
                    break
        except UpstreamError as error:
            logger.warning("upstream stream broke", extra={"error_kind": error.kind})
            yield "data: " + json.dumps({"error": {"code": "upstream_stream_error", "message": error.message}}) + "\n\n"
        finally:
            OPEN_STREAMS.forget(key_id)
            upstream.close()
            self.upstream_slot.release()
            if not settled:
                # The client went away, upstream broke or the stream was cut: charge what upstream
                # reported, else the prompt estimate plus one token per content chunk received.
                self._settle_stream("incomplete", reported, content_chunks, started)

    @staticmethod
    def _cut_reason(cut_at, key_id):
        """(code, message) when a running stream must stop now, else None."""
        if time.perf_counter() >= cut_at:
            return "stream_too_long", "the stream exceeded the gateway's maximum duration"
        if not OPEN_STREAMS.usable(key_id):
            return "api_key_revoked", "the API key was revoked or its user suspended during the stream"
        return None

    def _settle_stream(self, status, reported, content_chunks, started):
        """Settle a stream that ended (success) or stopped early (incomplete)."""
        prompt, completion = pricing.billable_tokens(reported, self.worst_case.prompt_estimate, content_chunks)
        upstream_ms = (time.perf_counter() - started) * 1000
        upstream_cost = pricing.reported_cost(reported)
        self._settle(status, prompt, completion, 200, upstream_latency_ms=upstream_ms, upstream_cost=upstream_cost)

    def _upstream_failure(self, error, upstream_latency_ms):
        """Settle a failed call (it costs nothing) and return the domain error to raise."""
        self._settle(
            "error", upstream_status=error.status, error_code=error.kind, upstream_latency_ms=upstream_latency_ms
        )
        return error.as_domain_error()

    def _settle(
        self,
        status,
        prompt_tokens=0,
        completion_tokens=0,
        upstream_status=None,
        error_code=None,
        upstream_latency_ms=None,
        upstream_cost=None,
    ):
        """Release the hold, charge the real cost (ledger, usage row, daily totals: one statement) and
        count the real tokens against the rate-limit windows, giving the concurrency slot back."""
        cost = pricing.cost_of(self.model, status, prompt_tokens, completion_tokens)
        latency_ms = (time.perf_counter() - self.facts.started) * 1000
        principal = self.principal
        finished = settlement.FinishedRequest(
            user_id=principal["user_id"],
            api_key_id=principal["api_key_id"],
            actor=principal["actor"],
            request_id=self.facts.request_id,
            model=self.model["id"],
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
            tags=self.tags,
        )
        with db.statement() as cur:  # settle_request is a single statement
            charged, balance, settled_budgets = settlement.settle_request(cur, finished)
        self.held, self.hold_id = False, None
        if charged > self.hold:  # recorded as usage_records.exceeded_hold by the settlement
            logger.warning(
                "charge exceeded the hold",
                extra={
                    "request_id": self.facts.request_id,
                    "user_id": principal["user_id"],
                    "held": format_money(self.hold),
                    "charged": format_money(charged),
                    "balance": format_money(balance),
                },
            )
        metrics.observe_completion(
            self.model["id"],
            upstream_status,
            upstream_latency_ms,
            prompt_tokens,
            completion_tokens,
            cost,
            charged,
            upstream_cost,
        )
        rate_limits.charge_tokens(self.admission, prompt_tokens + completion_tokens)
        budgets.announce(principal, self.facts.request_id, settled_budgets)
        self.charged, self.balance = charged, balance
        self.latency_ms, self.upstream_latency_ms = latency_ms, upstream_latency_ms


def _client():
    return current_app.extensions["ops_gateway.openrouter"]
