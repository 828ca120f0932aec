"""Benchmarks: gateway overhead, endpoint throughput and data-scale checks (python -m bench)."""
