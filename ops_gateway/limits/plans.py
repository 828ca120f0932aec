"""What a user's limits are: their plan's, each window overridden where an admin set a value.

The rule "override, else the plan" lives in ``effective_limits``; the columns that feed it (the
plan's and the override's value of every window) are derived from the window registry, so the
key lookup and the admin reads select the same ones.
"""

from ops_gateway.limits.windows import LIMIT_FIELDS, QUOTA_FIELDS

# Every column of a plan, as /admin/plans lists it.
PLAN_COLUMNS = ", ".join(("name", "description", *LIMIT_FIELDS, *QUOTA_FIELDS, "max_concurrent_requests"))

# The select list of a row joining ``plans p`` and ``rate_limit_overrides o``: each window's plan
# value under its own name, its override under ``o_<name>`` (NULL: none), then the plan's quotas
# and concurrency. ``effective_limits`` reads such a row.
LIMIT_COLUMNS = ", ".join(
    (
        *(f"p.{field}" for field in LIMIT_FIELDS),
        *(f"o.{field} AS o_{field}" for field in LIMIT_FIELDS),
        *(f"p.{field}" for field in QUOTA_FIELDS),
        "p.max_concurrent_requests",
    )
)


def effective_limits(row):
    """({window: limit}, {window: "override" | "plan"}) from a row selected with LIMIT_COLUMNS."""
    limits, sources = {}, {}
    for field in LIMIT_FIELDS:
        override = row.get(f"o_{field}")
        limits[field] = override if override is not None else row[field]
        sources[field] = "override" if override is not None else "plan"
    return limits, sources
