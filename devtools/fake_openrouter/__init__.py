"""A fake OpenRouter for development, end-to-end tests and benchmarks.

It serves the model lists (``catalogue``: the chat models, ``openrouter/auto`` included, at
``/models`` and the embedding models at ``/embeddings/models``, apart as OpenRouter lists them), chat
completions (``chat``), embeddings (``embeddings``), the Responses API (``responses``), the
Anthropic Messages API (``messages``) and the record of every generation it served
(``generations``: ``GET /api/v1/generation?id=``). Answers are deterministic
(same request, same usage and text) and cheap to produce, because benchmarks use this server as the
"direct" baseline and its CPU competes with the gateway's. Faults (outage, latency, forced status,
the next N requests failing, slow streams, streams cut mid-way), routing (unavailable models, a
forced served model, where ``openrouter/auto`` routes) and billing (a cost multiplier, late
generation records, long answers when no limit is given) are switched at run time through
``/_control`` and shared between worker processes through a small JSON state file (``faults``).

It is its own small HTTP/1.1 server on gevent (``server``) rather than Flask under gunicorn:
each keep-alive connection is a greenlet reading requests off its socket, so a request costs one
wake-up and a little parsing, and slow answers (latency, chunk delays) wait in ``gevent.sleep``,
holding nothing but their own greenlet: one process holds thousands of slow connections and
open streams (docs/performance.md, capacity suite). Nothing is monkey-patched; the server only uses
gevent's own sockets and sleep, so it also runs in a thread of another program (the tests).

Run it with ``python -m devtools.fake_openrouter [--host H] [--port P] [--workers N]``.
"""

from devtools.fake_openrouter.catalogue import MODELS
from devtools.fake_openrouter.faults import (
    DEFAULT_FAULTS,
    RECHECK_SECONDS,
    FaultSwitches,
    default_state_file,
)
from devtools.fake_openrouter.generations import GenerationLog, generations_directory
from devtools.fake_openrouter.replies import StreamCut
from devtools.fake_openrouter.routes import FakeOpenRouter
from devtools.fake_openrouter.server import DEFAULT_PORT, FakeOpenRouterServer, main, serve

__all__ = [
    "DEFAULT_FAULTS",
    "DEFAULT_PORT",
    "MODELS",
    "RECHECK_SECONDS",
    "FakeOpenRouter",
    "FakeOpenRouterServer",
    "FaultSwitches",
    "GenerationLog",
    "StreamCut",
    "default_state_file",
    "generations_directory",
    "main",
    "serve",
]
