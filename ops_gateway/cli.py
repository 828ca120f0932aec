"""Operator commands: ``flask --app wsgi <command>``."""

import click

from ops_gateway.core import db, migrations
from ops_gateway.upstream import catalog
from ops_gateway.upstream.failures import UpstreamError


def init_app(app):
    """Register the CLI commands."""

    @app.cli.command("migrate")
    def migrate_command():
        """Apply pending SQL migrations (the Procfile's release step)."""
        applied = migrations.migrate(db.get_database())
        click.echo(f"applied {len(applied)} migration(s): {', '.join(applied) or 'none pending'}")

    @app.cli.command("refresh-models")
    def refresh_models_command():
        """Fetch the model catalogue from OpenRouter now (make run does this at start-up)."""
        try:
            result = catalog.refresh_models()
        except UpstreamError as exc:
            raise click.ClickException(f"model catalogue refresh failed: {exc.message}") from exc
        click.echo(f"model catalogue refreshed: {result['total_models']} models")
