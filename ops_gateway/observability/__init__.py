"""Floor 7, read models across domains: health checks (``health_checks``), the user and admin
monitor documents (``monitor_documents``), the deployment's resources and pool (``system_state``),
usage metrics and spend reports, security events and the alert rules. Their SQL is in
``queries``, ``usage_queries`` and ``spend_queries``."""
