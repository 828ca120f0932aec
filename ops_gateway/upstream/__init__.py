"""OpenRouter: the HTTP client, the shared model catalogue, the completion pipeline (hold,
admit, call, settle) and the per-instance cap on upstream calls; plus the fake OpenRouter used
by tests and benchmarks."""
