"""Health endpoints for load balancers and uptime monitors (no authentication)."""

from flask_smorest import Blueprint

from blueprints.docs import PUBLIC
from blueprints.schemas import HealthSchema, LiveSchema, ReadySchema
from ops_gateway.observability.health_checks import health_report, readiness

blp = Blueprint(
    "health",
    __name__,
    url_prefix="/health",
    description="Liveness and readiness probes and per-dependency health, for load balancers (no key)",
)


@blp.route("")
@blp.doc(**PUBLIC)
@blp.response(200, HealthSchema)
@blp.alt_response(503, schema=HealthSchema, description="Database unreachable (status unhealthy)")
def health():
    """Overall health with each dependency's state; 503 when the database is unreachable."""
    return health_report()


@blp.route("/live")
@blp.doc(**PUBLIC)
@blp.response(200, LiveSchema)
def live():
    """Liveness: 200 while the process serves requests (checks no dependency)."""
    return {"status": "alive"}


@blp.route("/ready")
@blp.doc(**PUBLIC)
@blp.response(200, ReadySchema)
@blp.alt_response(503, schema=ReadySchema, description="Database unreachable or migrations pending")
def ready():
    """Readiness: 200 once migrations are applied and the database answers."""
    ok, reason = readiness()
    return {"status": "ready" if ok else "not_ready", "reason": reason}, 200 if ok else 503
