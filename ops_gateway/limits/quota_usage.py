"""The quotas' starting point, read from Postgres: what a user used so far in each quota period.

Redis counts the quotas, but Postgres (usage_daily_totals, written in the same statement as each
settlement) is the record. When Redis has no hash for a period (its first request, or Redis
restarted empty, was flushed or failed over to an empty replica) the gate seeds it from here, so
a quota never restarts at zero mid-period. One small indexed read per user (or org) and period.
"""

from ops_gateway.core import db
from ops_gateway.limits import queries
from ops_gateway.limits.windows import QUOTA_PERIODS, QUOTAS


def period_seeds(principal, now):
    """Per quota period (``QUOTA_PERIODS`` order) the hash fields to seed: [field, used, ...]."""
    sums = [
        (f"{period.name}_{quota.kind.quota_tag}", quota.kind.usage_column, period.first_day(now))
        for period in QUOTA_PERIODS
        for quota in QUOTAS
        if quota.period == period.name
    ]
    with db.statement() as cur:
        totals = queries.usage_since(cur, principal["user_id"], principal.get("org_id"), sums)
    seeds = []
    for period in QUOTA_PERIODS:
        fields = []
        for quota in QUOTAS:
            if quota.period == period.name:
                fields += [quota.kind.quota_tag, int(totals[f"{period.name}_{quota.kind.quota_tag}"])]
        seeds.append(fields)
    return seeds
