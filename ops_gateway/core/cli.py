"""Operator commands: ``flask --app wsgi <command>``."""

import click

from ops_gateway.core import db, migrations


def init_app(app):
    """Register the CLI commands."""

    @app.cli.command("migrate")
    def migrate_command():
        """Apply pending SQL migrations (the Procfile's release step)."""
        applied = migrations.migrate(db.get_database())
        click.echo(f"applied {len(applied)} migration(s): {', '.join(applied) or 'none pending'}")
