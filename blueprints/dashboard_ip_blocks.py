"""/dashboard/ip-blocks: the IP blocks in force, each with a button that lifts it.

The list is GET /admin/blocked-ips's (``ip_blocks.list_blocks``) and lifting is
DELETE /admin/blocked-ips/<ip>'s (``ip_blocks.unblock_ip``): the row and the Redis key go, the
address's failure window is cleared, and an ``ip_unblocked`` security event names the admin.
"""

from flask import Blueprint, flash, g, redirect, render_template, url_for

from blueprints import dashboard_forms as forms
from blueprints.dashboard import protect
from ops_gateway.core import db
from ops_gateway.core.errors import GatewayError
from ops_gateway.limits import ip_blocks

blp = Blueprint("dashboard_ip_blocks", __name__, url_prefix="/dashboard/ip-blocks", template_folder="templates")
protect(blp)


@blp.route("")
def index():
    """Every IP block in force, newest first: automatic ones after failed sign-ins, and manual ones."""
    with db.transaction() as cur:
        blocks = ip_blocks.list_blocks(cur)
    return render_template("dashboard/ip_blocks.html", blocks=blocks)


@blp.route("/lift", methods=["POST"])
def lift():
    """Lift one address's block at once (after the confirmation page)."""
    back = url_for(".index")
    try:
        address = ip_blocks.block_address(forms.given("ip", 100) or "")
        if not forms.confirmed():
            summary = [("Address", address), ("Effect", "Requests from it are accepted again at once.")]
            return forms.ask("Lift this block?", summary, "Lift block", back)
        with db.transaction() as cur:
            ip_blocks.unblock_ip(cur, address, g.user["actor"])
    except GatewayError as error:
        return forms.refusal(error, back, title="The block was not lifted")
    flash(f"Lifted the block on {address}.", "success")
    return redirect(back)
