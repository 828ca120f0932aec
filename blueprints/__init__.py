"""HTTP surfaces: each module holds one flask-smorest Blueprint (or two, user and admin views)."""


def all_blueprints():
    """Every blueprint the app registers, in registration order."""
    from blueprints import admin_limits, admin_models, admin_users, audit_logs, health, user_keys, v1

    return [
        health.blp,
        admin_users.blp,
        user_keys.blp,
        audit_logs.user_blp,
        audit_logs.admin_blp,
        admin_models.blp,
        admin_limits.blp,
        v1.blp,
    ]
