"""Schemas of /admin/jobs: jobs, their schedule and their runs."""

import marshmallow as ma

from blueprints.fields import Timestamp


class JobRunRecordSchema(ma.Schema):
    """One run of a job (a job_runs row)."""

    id = ma.fields.Integer()
    job = ma.fields.String()
    status = ma.fields.String(metadata={"enum": ["running", "success", "failed", "skipped"]})
    started_at = Timestamp()
    finished_at = Timestamp(allow_none=True)
    duration_ms = ma.fields.Float(allow_none=True)
    details = ma.fields.Dict(metadata={"description": "trigger, tick, and the job's own findings"})
    error = ma.fields.String(allow_none=True)
    runner = ma.fields.String(metadata={"description": "host:pid of the process that ran it"})


class JobSchema(ma.Schema):
    """A job, its schedule and its history."""

    name = ma.fields.String()
    description = ma.fields.String()
    enabled = ma.fields.Boolean(metadata={"description": "false when its interval is 0 (run by hand only)"})
    interval_seconds = ma.fields.Float()
    jitter_seconds = ma.fields.Float()
    interval_setting = ma.fields.String(metadata={"description": "environment variable holding the interval"})
    next_run_at = Timestamp(allow_none=True, metadata={"description": "next tick (a clock runs it within jitter)"})
    last_scheduled_tick = Timestamp(allow_none=True, metadata={"description": "last tick a clock claimed"})
    last_run = ma.fields.Nested(JobRunRecordSchema, allow_none=True, metadata={"description": "newest run not skipped"})
    recent_runs = ma.fields.List(ma.fields.Nested(JobRunRecordSchema))


class JobListSchema(ma.Schema):
    """Every job."""

    jobs = ma.fields.List(ma.fields.Nested(JobSchema))


class JobListArgsSchema(ma.Schema):
    """How much history to include."""

    history = ma.fields.Integer(load_default=10, validate=ma.validate.Range(min=1, max=100))
    include_skipped = ma.fields.Boolean(load_default=False, metadata={"description": "list skipped runs too"})
