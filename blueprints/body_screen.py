"""Whose large body is read: a caller the answer does not depend on the body for is refused first.

Reading, scanning and validating a body costs CPU in proportion to its size (seconds for 4 MB of
chat messages), while a wrong key or a blocked IP is refused from the headers alone. So a body
over ``SCREENED_BODY_BYTES``, or of unknown length (chunked), is read only once the request has
passed the checks that need no body: a route that exists and takes this method (404/405), the IP
block (429), and the credential of its area (401/403), each as the route itself checks it,
failures audited and counted as there. A refused body is never read; the connection is closed
after the answer (``request_limits.CLOSE_CONNECTION``).

Smaller bodies skip this: reading and checking them costs less than the extra key lookup, and a
metered request's own lookup carries its credit hold (``Completion.open``), so the common case
keeps its one round trip.
"""

from flask import current_app, request

from blueprints.guards import key_authorization, require_admin
from ops_gateway.accounts import auth
from ops_gateway.limits import security

# Above this many bytes a body waits for its caller to be known (a chat request with a long
# conversation pays one more key lookup; a 401 for any body costs what a bodiless one does).
SCREENED_BODY_BYTES = 64 * 1024


def is_screened(content_length, chunked):
    """Whether a body of this Content-Length (None: not given) or chunked is read only after ``screen``."""
    return chunked or content_length is None or content_length > SCREENED_BODY_BYTES


def _bearer_key():
    """/v1 and /user: the IP block, then the bearer key (usable, from an allowed address)."""
    auth.authenticate(key_authorization(), request.remote_addr, request.path)


def _ip_block():
    """Elsewhere (the dashboard): the IP block; the page's own guard does the rest."""
    security.check_ip_block(request.remote_addr)


# The checks of each area, by the path's first segment, before its body is read.
_AREA_CHECKS = {"v1": _bearer_key, "user": _bearer_key, "admin": require_admin}


def screen():
    """Raise the refusal a request gets whatever its body says: its 404/405, its IP block or its
    credential's 401/403/429."""
    if request.routing_exception is not None:
        current_app.raise_routing_exception(request)
    area = request.path.split("/", 2)[1]
    _AREA_CHECKS.get(area, _ip_block)()
