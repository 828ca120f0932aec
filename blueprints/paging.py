"""Pages of listings: opaque cursors for newest-first pages ordered by (created_at, id) (the audit
log, security events, the request log), and the numbered pages of the admin listings (users, orgs)."""

import base64
import json
from datetime import datetime

from ops_gateway.core import db


def encode_cursor(row):
    """Opaque cursor of the last row returned: its (created_at, id)."""
    raw = json.dumps([row["created_at"].isoformat(), row["id"]]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


# Row ids are bigint: a cursor naming anything else was not made here.
_MAX_ROW_ID = 2**63 - 1


def decode_cursor(cursor):
    """(created_at, id) from a cursor; ValueError when it was not made by encode_cursor (an id
    that is not a whole number in bigint's range, such as ``1e400`` or ``1.5``, included)."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created_at, row_id = json.loads(base64.urlsafe_b64decode(padded))
        if type(row_id) is not int or not 0 <= row_id <= _MAX_ROW_ID:
            raise ValueError("the cursor's id is not a row id")
        return datetime.fromisoformat(created_at), row_id
    except (ValueError, TypeError) as exc:
        raise ValueError("invalid cursor") from exc


def next_cursor(rows, limit):
    """The cursor of the page after ``rows`` when the page is full, else None."""
    return encode_cursor(rows[-1]) if len(rows) == limit else None


def numbered_page(args, name, fetch):
    """A numbered page of an admin listing (``NumberedPageSchema``): ``fetch(cur, offset, limit)``
    gives (total, rows), returned under ``name``."""
    size = args["page_size"]
    with db.transaction() as cur:
        total, rows = fetch(cur, (args["page"] - 1) * size, size)
    return {"total": total, "page": args["page"], "page_size": size, name: rows}
