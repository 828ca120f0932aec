"""Development and test tooling, never shipped in ``ops_gateway/``: the fake OpenRouter
(``fake_openrouter``), ``make run``'s dev server (``devserver``) and its demo upstream
(``fake_upstream``), and ports for child servers (``ports``). Used by ``make run``/``run-demo``,
the tests and the benchmarks."""
