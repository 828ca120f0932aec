"""The operator dashboard's own services: sessions (an admin key exchanged for a cookie), the
reads no API service offers, the 24-hour series and the component status for /status."""
