"""HTTP surfaces: each module holds one flask-smorest Blueprint (or two, user and admin views)."""


def all_blueprints():
    """Every blueprint the app registers, in registration order."""
    from blueprints import admin_users, audit_logs, health, user_keys

    return [health.blp, admin_users.blp, user_keys.blp, audit_logs.user_blp, audit_logs.admin_blp]
