"""Floor 8, the operator dashboard's own services: sessions (who may sign in, whether a session
stands), the reads no API service offers and the 24-hour series (their SQL in ``queries``)."""
