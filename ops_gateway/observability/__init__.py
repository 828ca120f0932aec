"""What operators see: health checks, Prometheus metrics, the user and admin monitors, security
events, and alert rules with their webhook. Their SQL is in ``queries`` (usage figures: ``usage_queries``)."""
