"""Floor 1, what every domain emits into: Prometheus metrics (``metrics``), alerts firing and
resolving with their webhook (``alerts``) and the key audit trail (``audit``). Their SQL is in
``alert_queries`` and ``audit_queries``. Reading across domains is the ``observability`` floor's job."""
