"""One metered /v1 request (a chat completion, embeddings, a Responses API call), from the
caller's key to its settlement, as an object with its own state (``endpoints`` says what differs).

``open`` authenticates and holds the request's worst-case cost (one Postgres statement), admits
it (one Redis call) and takes an upstream slot; ``complete`` or ``stream`` calls upstream, its
output limited to what was held, and settles exactly once (one statement, one Redis call): the
charge is upstream's reported cost times BILLING_MARKUP. A request upstream reported no cost for
(a cut stream) is charged its prompt bound plus the output delivered, and reconciled with
upstream's bill by its generation lookup later (``billing.reconciliation``).

Refusals come in this order: 401/403 key, 403 scope, 400/422 body, 429 (IP block, concurrency,
quotas, token and request windows), 404 unknown model, 402 credits, 503 upstream_busy; any
refusal after the hold gives it back, and upstream failures cost nothing. A body up to 64 KiB is
read before the key so the hold can ride on the key lookup (``blueprints/body_screen``). No
database connection is held while upstream answers. Fallback models: held for the dearest,
billed for the one that answered (``routing``). A request the response cache answers skips
upstream and is charged its factor of the original (``response_cache``); its trace spans and
logged payloads come from ``telemetry``.
"""

import json
import time
import uuid

from flask import current_app

from ops_gateway.accounts import auth
from ops_gateway.billing import budgets, credits, pricing
from ops_gateway.core import db
from ops_gateway.core.errors import BadRequest, NotFound
from ops_gateway.limits import rate_limits
from ops_gateway.pipeline import relay, response_cache, routing
from ops_gateway.pipeline import slots as upstream_slots
from ops_gateway.pipeline.endpoints import CHAT
from ops_gateway.pipeline.settling import Settling
from ops_gateway.pipeline.stages import StageClock
from ops_gateway.pipeline.tags import request_tags
from ops_gateway.telemetry import tracing
from ops_gateway.upstream.failures import UpstreamError

_CLIENT = "ops_gateway.openrouter"  # the OpenRouterClient the catalogue made for this app


class Completion(Settling):
    """One metered request: what was asked, who asked, what is held, and how it ended.

    It owns the request's admission (its concurrency slot), its credit hold, its upstream slot and
    its settlement from ``open`` to ``close``; ``relay`` reports a stream's end through
    ``stream_finished`` and ``stream_ended``.
    """

    def __init__(self, facts, body, invalid=None, endpoint=CHAT):
        """``facts``: the ``access.RequestFacts``; ``body``: the validated body, or None with
        ``invalid``, the 400/422 to raise once the caller is known; ``endpoint``: which one."""
        self.facts = facts
        self.body = body
        self.invalid = invalid
        self.endpoint = endpoint
        self.admission = rate_limits.Admission(facts.client_ip)  # the key, concurrency slot, windows
        self.models = []  # every model the request can reach, the one asked for first
        self.model = None  # the one held for (the dearest), then the one billed
        self.tags = []
        self.worst_case = None  # pricing.WorstCase: what is held
        self.held, self.hold_id = False, None  # whether credits are held; the hold's credit_holds row
        self.upstream_slot = self.upstream_started = None  # the slot; perf_counter() when upstream was called
        self.relaying = False  # a stream is out to the client: its end gives the slots back
        self.cache = None  # response_cache.Lookup when the caller asked for the cache
        self.succeeded = False  # settled as a whole answer (what the cache may keep)
        self.charged = self.balance = None
        self.latency_ms = self.upstream_latency_ms = None
        self.settlement_id, self.settled = str(uuid.uuid4()), False  # the database settles each id once
        self.clock = StageClock(facts.started)  # Server-Timing: parse, auth, admit, upstream, settle
        self.clock.mark("parse")  # the view read and validated the body before making this

    @property
    def principal(self):
        """The authenticated caller (None until ``open`` checked the key)."""
        return self.admission.principal

    @property
    def streamed(self):
        """Whether the client asked for server-sent events."""
        return bool(self.endpoint.stream_call and self.body.get("stream"))

    @property
    def hold(self):
        """The credits held for the worst case (None when there is no model to price)."""
        return self.worst_case.cost if self.worst_case else None

    @property
    def credits_remaining(self):
        """The balance after settlement (or, when nothing was charged, the spendable balance at the key lookup)."""
        spendable = self.principal["credits"] - self.principal["reserved_credits"]
        return self.balance if self.balance is not None else spendable

    @property
    def overhead_ms(self):
        """Time spent in the gateway rather than upstream (all of it for a cache hit)."""
        return max(self.latency_ms - (self.upstream_latency_ms or 0), 0)

    @property
    def cache_hit(self):
        """Whether the response cache answers this request (upstream is not called)."""
        return bool(self.cache and self.cache.entry)

    def open(self):
        """Authenticate, hold, admit and take an upstream slot, or raise the first refusal."""
        refusal, unknown_model, cache_ttl = self.invalid, None, None
        config = current_app.config
        if refusal is None:
            try:
                self.tags = request_tags(self.facts.tags_header, self.body)
                cache_ttl = response_cache.requested_ttl(self.facts.cache_ttl_header, config["CACHE_MAX_TTL_SECONDS"])
                self.models, self.model, self.worst_case = routing.plan(self.body, self.endpoint, config)
            except (BadRequest, UpstreamError) as error:  # bad tags or cache TTL; a catalogue never fetched (502)
                refusal = error
            except NotFound as error:  # raised after the rate limits, as before
                unknown_model = error
        facts = self.facts
        self.admission.principal = auth.authenticate_and_hold(
            facts.authorization, facts.client_ip, facts.path, self.hold, facts.request_id
        )
        self.held, self.hold_id = self.principal["held"], self.principal["hold_id"]
        self.clock.mark("auth")
        budget_refusal = None
        try:
            if self.principal["budgeted"] and self.hold is not None:  # the key lookup did not hold
                self.held, self.hold_id, budget_refusal = budgets.hold_for_request(
                    self.principal, self.hold, self.facts.request_id
                )
            refusal = auth.scope_error(self.principal, self.endpoint.scope) or refusal
            if refusal is None:
                refusal = routing.access_refusal(self.principal, self.body)
            if refusal:
                rate_limits.refuse_uncounted(self.admission, refusal)
            rate_limits.gate(self.admission, rate_limits.Mode.COMPLETION)
            if unknown_model:
                raise unknown_model
            if not self.held:
                raise budget_refusal or credits.payment_required(self.principal, self.model["id"], self.worst_case)
            self.cache = response_cache.lookup(
                self.principal, self.endpoint, self.body, cache_ttl, facts.no_store, config["CACHE_MAX_TTL_SECONDS"]
            )
            if not self.cache_hit:
                self.upstream_slot = upstream_slots.acquire()
            self.clock.mark("admit")
        except BaseException:
            self._give_back_hold()
            raise

    def _give_back_hold(self):
        if self.hold_id:
            with db.statement() as cur:
                credits.release(cur, self.hold_id)
        self.held, self.hold_id = False, None

    def complete(self):
        """Call upstream without streaming (or answer from the cache), settle, and return the JSON."""
        if self.cache_hit:
            return json.loads(self._answer_from_cache())
        payload = self.endpoint.payload(self.body, stream=False, output_limit=self.worst_case.output_limit)
        self.upstream_started = time.perf_counter()
        try:
            result = self._call_upstream(self.endpoint.call, payload)
        except UpstreamError as error:
            raise self._upstream_failure(error) from None
        finally:
            self._release_upstream_slot()
        self.clock.mark("upstream")
        usage = self.endpoint.usage(result.get("usage"))
        # Without reported usage the prompt and output are charged at their bounds until the
        # generation lookup brings upstream's bill: nothing unreported is free.
        worst = self.worst_case
        prompt, completion = pricing.billable_tokens(usage, worst.prompt_bound, worst.output_limit)
        self.model = routing.billed_model(self.models, result.get("model"))  # a fallback, maybe
        cost, generation_id = pricing.reported_cost(usage), result.get("id")
        self._settle("success", prompt, completion, 200, upstream_cost=cost, generation_id=generation_id)
        self.clock.mark("settle")
        answer = json.dumps(result)
        self._keep_in_cache(answer, prompt, completion)
        self._log_payloads(answer)
        return result

    def stream(self):
        """Start a streaming call (its errors surface here, before any byte is sent); return the
        iterator of server-sent events, which settles when it ends (a cache hit: at once)."""
        if self.cache_hit:
            return response_cache.replay(self._answer_from_cache())
        payload = self.endpoint.payload(self.body, stream=True, output_limit=self.worst_case.output_limit)
        self.upstream_started = time.perf_counter()
        try:
            upstream = self._call_upstream(self.endpoint.stream_call, payload)
        except BaseException as error:
            self._release_upstream_slot()
            if isinstance(error, UpstreamError):
                raise self._upstream_failure(error) from None
            raise
        self.clock.mark("upstream")  # its status and headers: the events follow
        self.relaying = True
        events = relay.relay(
            upstream,
            self,
            stream_format=self.endpoint.name,
            key_id=self.principal["api_key_id"],
            request_id=self.facts.request_id,
            cut_at=self.upstream_started + current_app.config["MAX_STREAM_SECONDS"],
        )
        if self.cache is None and not self.principal["log_payloads"]:
            return events
        config = current_app.config
        return relay.copied(
            events, self._stream_copied, max(config["CACHE_MAX_ENTRY_BYTES"], config["PAYLOAD_MAX_BYTES"])
        )

    def _call_upstream(self, method, payload):
        """One call to the OpenRouter client's ``method`` in its trace span (a stream's: until its
        headers), the span's context passed upstream in ``traceparent``."""
        operation, model = self.endpoint.operation, self.body["model"]
        with tracing.upstream_call(self.facts.span, operation, model) as (_, trace_headers):
            headers = {**(self.facts.upstream_headers or {}), **trace_headers}
            return getattr(current_app.extensions[_CLIENT], method)(payload, headers or None)

    def _stream_copied(self, text, whole):
        """``relay.copied``: a stream is over; keep it whole in the cache, log its payloads."""
        if whole:
            self._keep_in_cache(text, *self.billed_tokens)
        self._log_payloads(text)

    def stream_finished(self, progress):
        """``relay``: the stream's last event arrived; settle it as a success and return the charge."""
        self._settle_stream("success", progress)
        return self.charged

    def stream_ended(self, progress):
        """``relay``: the stream is over, however it ended; free the upstream slot and settle a
        stream that stopped early (client gone, upstream broke, cut) as incomplete."""
        self.relaying = False
        self._release_upstream_slot()
        if not self.settled:
            self._settle_stream("incomplete", progress)

    def close(self):
        """The request's teardown: give back a concurrency or upstream slot a failure left held. Flask
        tears a streamed request down when its view returns, before the stream: that one is skipped."""
        if self.relaying:
            return
        self._release_upstream_slot()
        rate_limits.release_slot(self.admission)

    def _release_upstream_slot(self):
        slot, self.upstream_slot = self.upstream_slot, None
        if slot is not None:
            slot.release()
