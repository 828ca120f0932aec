"""Operator commands: ``flask --app wsgi jobs run <name>`` and ``flask --app wsgi jobs list``."""

import json

import click
from flask import current_app
from flask.cli import AppGroup

from scheduler import runner
from scheduler.jobs import JOBS, interval_seconds

jobs_cli = AppGroup("jobs", help="Scheduler jobs, run by hand.")


@jobs_cli.command("run")
@click.argument("name", type=click.Choice(sorted(JOBS)))
def run_command(name):
    """Run one job now, through the same lock as the clock; print its job_runs row."""
    run = runner.run_job(name, trigger="cli")
    click.echo(json.dumps(run, default=str, indent=2))
    if run["status"] != "success":
        raise SystemExit(1)


@jobs_cli.command("list")
def list_command():
    """Print every job with its interval (0 = not scheduled) and what it does."""
    for job in JOBS.values():
        click.echo(f"{job.name:<22} {interval_seconds(job, current_app.config):>8g}s  {job.description}")
