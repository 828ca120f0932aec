"""WSGI entry point for gunicorn and ``flask --app wsgi``."""

from ops_gateway.app import create_app

app = create_app()
