"""Floor 3, how often: rate limits on /v1 counted in Redis so they are exact across workers and
instances: the window and quota registry (``windows``), a user's limits from plan and overrides
(``plans``, ``limit_overrides``), which windows a longer one caps (``window_caps``), admitting and
charging a request (``rate_limits``, with gate.lua and charge.lua), where a user's windows stand
(``window_status``), and the request-path IP guard (``security``: brute-force blocks, new-IP
events; ``ip_blocks``). Their SQL is in ``queries`` and ``ip_block_queries``."""
