"""Rate limits: plans and per-user overrides, request and token windows, quotas and concurrency,
counted in Redis so they are exact across workers and instances."""
