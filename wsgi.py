"""WSGI entry point for gunicorn and ``flask --app wsgi``."""

from blueprints.app import create_app

app = create_app()
