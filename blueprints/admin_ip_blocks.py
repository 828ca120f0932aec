"""/admin/blocked-ips: list the IP blocks in force, block an address by hand, lift a block."""

import marshmallow as ma
from flask import g, request
from flask.views import MethodView
from flask_smorest import Blueprint

from blueprints.docs import ADMIN_ERRORS, documents_errors
from blueprints.fields import Timestamp
from blueprints.guards import admin_only
from ops_gateway.core import db
from ops_gateway.limits import ip_blocks

blp = Blueprint(
    "admin_ip_blocks",
    __name__,
    url_prefix="/admin",
    description="Block a client address for a while, list the blocks, lift one (admin key)",
)
admin_only(blp)


class IpBlockSchema(ma.Schema):
    """One IP block in force."""

    address = ma.fields.String(metadata={"description": "IPv4 or IPv6 address"})
    reason = ma.fields.String(metadata={"description": "repeated_auth_failures, or the admin's reason"})
    actor = ma.fields.String(metadata={"description": "system (automatic) or the admin (admin:<id>)"})
    since = Timestamp()
    expires_at = Timestamp()


class IpBlockListSchema(ma.Schema):
    """Every IP block in force, newest first."""

    blocks = ma.fields.List(ma.fields.Nested(IpBlockSchema))


class CreateIpBlockSchema(ma.Schema):
    """Body of POST /admin/blocked-ips."""

    ip = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=100))
    ttl_seconds = ma.fields.Integer(
        required=True,
        validate=ma.validate.Range(min=ip_blocks.MIN_BLOCK_SECONDS, max=ip_blocks.MAX_BLOCK_SECONDS),
    )
    reason = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=500))


@blp.route("/blocked-ips")
class BlockedIps(MethodView):
    """The IP blocks."""

    @blp.response(200, IpBlockListSchema)
    @documents_errors(blp, *ADMIN_ERRORS)
    def get(self):
        """Every IP block in force (automatic after failed authentications, or manual), newest first."""
        with db.transaction() as cur:
            return {"blocks": ip_blocks.list_blocks(cur)}

    @blp.arguments(CreateIpBlockSchema)
    @blp.response(201, IpBlockSchema)
    @documents_errors(blp, *ADMIN_ERRORS, 400, 409, 422)
    def post(self, body):
        """Block an address for ttl_seconds (replacing any block it has); a security event names the admin."""
        with db.transaction() as cur:
            return ip_blocks.block_ip(
                cur, body["ip"], body["ttl_seconds"], body["reason"], g.user["actor"], request.remote_addr
            )


@blp.route("/blocked-ips/<string:ip>", methods=["DELETE"])
@blp.response(204)
@documents_errors(blp, *ADMIN_ERRORS, 400, 404)
def unblock(ip):
    """Lift an address's block at once; a security event names the admin."""
    with db.transaction() as cur:
        ip_blocks.unblock_ip(cur, ip, g.user["actor"])
