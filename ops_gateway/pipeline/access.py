"""What every /v1 request hands its services, and the admission of those that are not completions.

A /v1 request is refused in a fixed order: its key (401/403), its scope (403), then the rate
limits (429). Completions add their body, model, credits and upstream slot (``completion``).
"""

from dataclasses import dataclass

from ops_gateway.accounts import auth
from ops_gateway.limits import rate_limits


@dataclass(frozen=True)
class RequestFacts:
    """What the HTTP layer saw of a /v1 request: who is calling, from where, and since when."""

    authorization: str  # the Authorization header, "" when absent
    client_ip: str
    path: str
    request_id: str
    started: float  # time.perf_counter() when the request arrived
    tags_header: str = ""  # X-Gateway-Tags, "" when absent
    upstream_headers: dict | None = None  # headers passed on upstream (the Messages API's version and betas)
    cache_ttl_header: str = ""  # X-Gateway-Cache-TTL, "" when absent
    no_store: bool = False  # Cache-Control: no-store: the response cache is neither read nor written
    span: object = None  # the request's trace span (``telemetry.tracing``; None: tracing off)


class Access:
    """A /v1 request that is not a completion (the model list, one model, count_tokens, a path /v1
    does not serve), from its key to its response headers: it owns its ``Admission``.

    ``Completion`` is its metered counterpart, with the same ``open``/``close``/``admission``.
    """

    def __init__(self, facts, scope):
        """``scope``: what the route needs; its request is counted against the request windows.
        None for a path /v1 does not serve: only the IP block is checked and nothing is counted
        (its 404 comes after the key)."""
        self.facts = facts
        self.scope = scope
        self.admission = rate_limits.Admission(facts.client_ip)

    @property
    def principal(self):
        """The authenticated caller (None until ``open`` checked the key)."""
        return self.admission.principal

    def open(self):
        """Authenticate the caller and admit the request, or raise its refusal."""
        facts, admission = self.facts, self.admission
        admission.principal = auth.authenticate_and_hold(facts.authorization, facts.client_ip, facts.path, None)
        if self.scope is None:
            rate_limits.gate(admission, rate_limits.Mode.IP_ONLY)
            return
        refusal = auth.scope_error(admission.principal, self.scope)
        if refusal:
            rate_limits.refuse_uncounted(admission, refusal)
        rate_limits.gate(admission, rate_limits.Mode.REQUESTS)

    def close(self):
        """Nothing to give back: such a request takes no concurrency slot."""
