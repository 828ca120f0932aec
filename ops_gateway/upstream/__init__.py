"""Floor 5, OpenRouter itself: the HTTP client (``openrouter``, each call logged by ``calls``), its
stream readers (``streams``), the model lists and the shared model catalogue (``catalog``, its SQL
in ``catalog_queries``), and what upstream's failures mean (``failures``). The metered request
that uses them is ``pipeline``."""
