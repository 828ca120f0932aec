"""HTTP surfaces: each module holds one flask-smorest Blueprint (or two, user and admin views)."""


def all_blueprints():
    """Every blueprint the app registers, in registration order."""
    from blueprints import (
        admin_ip_blocks,
        admin_jobs,
        admin_keys,
        admin_limits,
        admin_models,
        admin_orgs,
        admin_security,
        admin_users,
        audit_logs,
        health,
        metrics,
        monitor,
        org_self,
        request_log,
        usage_reports,
        user_keys,
        v1,
    )

    return [
        health.blp,
        admin_users.blp,
        admin_keys.blp,
        admin_orgs.blp,
        user_keys.blp,
        audit_logs.user_blp,
        audit_logs.admin_blp,
        admin_models.blp,
        admin_limits.blp,
        admin_jobs.blp,
        monitor.user_blp,
        monitor.admin_blp,
        admin_security.blp,
        admin_ip_blocks.blp,
        usage_reports.admin_blp,
        usage_reports.user_blp,
        org_self.blp,
        request_log.admin_blp,
        request_log.user_blp,
        metrics.blp,
        v1.blp,
    ]


def html_blueprints():
    """Plain Flask blueprints serving HTML: the operator dashboard and the public status page."""
    from blueprints import (
        dashboard,
        dashboard_audit,
        dashboard_ip_blocks,
        dashboard_keys,
        dashboard_oidc,
        dashboard_org_members,
        dashboard_orgs,
        dashboard_requests,
        dashboard_user_actions,
        dashboard_users,
        status_page,
    )

    return [
        dashboard.blp,
        dashboard_oidc.blp,
        dashboard_users.blp,
        dashboard_user_actions.blp,
        dashboard_keys.blp,
        dashboard_orgs.blp,
        dashboard_org_members.blp,
        dashboard_requests.blp,
        dashboard_audit.blp,
        dashboard_ip_blocks.blp,
        status_page.blp,
    ]
