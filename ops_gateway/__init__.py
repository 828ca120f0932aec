"""ops-gateway: an OpenAI-compatible LLM API gateway in front of OpenRouter.

The package itself imports nothing, so gunicorn's master can read the settings (and patch the
standard library for gevent workers) before any network library is imported. The app factory
is ``blueprints.app.create_app``; the process wiring it shares with the clock is ``ops_gateway.services``.
"""

__version__ = "0.1.0"
