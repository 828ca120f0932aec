"""/admin/refresh-models and /admin/cache-status: the shared model cache, for operators."""

from datetime import UTC, datetime

from flask_smorest import Blueprint

from blueprints.docs import ADMIN_ERRORS, documents_errors
from blueprints.envelope import ApiError
from blueprints.guards import admin_only
from blueprints.proxy_schemas import CacheStatusSchema, RefreshResultSchema
from ops_gateway.upstream import catalog as model_catalog
from ops_gateway.upstream.failures import UpstreamError

blp = Blueprint(
    "admin_models",
    __name__,
    url_prefix="/admin",
    description="The shared OpenRouter model catalogue: its state, and a refresh on demand (admin key)",
)
admin_only(blp)


def _now():
    return datetime.now(UTC).isoformat()


@blp.route("/refresh-models", methods=["POST"])
@blp.response(200, RefreshResultSchema)
@documents_errors(blp, *ADMIN_ERRORS, 502)
def refresh_models():
    """Fetch the model list now; on upstream failure → 502 and the previous list keeps serving."""
    try:
        result = model_catalog.refresh_models()
    except UpstreamError as error:
        raise ApiError(
            502, "upstream_unavailable", f"model refresh failed: {error.message}", {"kept_previous_list": True}
        ) from None
    return {
        "status": "success",
        "message": f"refreshed {result['total_models']} models",
        "total_models": result["total_models"],
        "duration_ms": result["duration_ms"],
        "timestamp": _now(),
    }


@blp.route("/cache-status")
@blp.response(200, CacheStatusSchema)
@documents_errors(blp, *ADMIN_ERRORS)
def cache_status():
    """Age, validity, staleness, hit rate and refresh history of the shared model cache."""
    return {"status": "success", "cache_info": model_catalog.cache_status(), "timestamp": _now()}
