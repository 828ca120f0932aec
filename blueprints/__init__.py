"""HTTP surfaces: each module holds one flask-smorest Blueprint."""


def all_blueprints():
    """Every blueprint the app registers, in registration order."""
    from blueprints import health

    return [health.blp]
