"""/admin/jobs: the scheduler's jobs, their history, and running one now (plus the ``jobs`` CLI group)."""

from flask import current_app, g
from flask_smorest import Blueprint

from blueprints.docs import ADMIN_ERRORS, documents_errors
from blueprints.envelope import ApiError
from blueprints.guards import admin_only
from blueprints.job_schemas import JobListArgsSchema, JobListSchema, JobRunRecordSchema
from ops_gateway.core import db
from scheduler import history, runner
from scheduler.commands import list_command, run_command

blp = Blueprint(
    "admin_jobs",
    __name__,
    url_prefix="/admin/jobs",
    description="The scheduler's jobs with their last runs, and running one now (admin key)",
    cli_group="jobs",
)
admin_only(blp)
# The blueprint carries the operator commands too, so `flask --app wsgi jobs ...` exists wherever the routes do.
blp.cli.add_command(run_command)
blp.cli.add_command(list_command)


@blp.route("")
@blp.arguments(JobListArgsSchema, location="query")
@blp.response(200, JobListSchema)
@documents_errors(blp, *ADMIN_ERRORS, 422)
def list_jobs(args):
    """Every job with its schedule, next run, last run and recent history."""
    with db.transaction() as cur:
        jobs = history.describe_jobs(cur, current_app.config, args["history"], args["include_skipped"])
    return {"jobs": jobs}


@blp.route("/<name>/run", methods=["POST"])
@blp.response(200, JobRunRecordSchema)
@documents_errors(blp, *ADMIN_ERRORS, 404, 409)
def run_job(name):
    """Run one job now, through the clock's lock; its run (status success, failed or skipped)."""
    run = runner.run_job(name, trigger="admin", actor=g.user["actor"])
    if run["details"].get("reason") == "running_elsewhere":
        raise ApiError(409, "job_running", f"{name} is running in another process; try again later", {"run": run["id"]})
    return run
