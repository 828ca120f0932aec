"""Rate limits on /v1, counted in Redis so they are exact across workers and instances: the window
and quota registry (windows), a user's limits from plan and overrides (plans, limit_overrides,
their SQL in queries), admitting and charging a request (rate_limits, with gate.lua and
charge.lua) and where a user's windows stand (status)."""
