"""Request tags: labels a caller attaches to a completion so its spend can be reported by them.

Given as ``X-Gateway-Tags: team-a,feature-x`` or ``"metadata": {"tags": [...]}`` in the body
(both are merged, first seen first). Bounded so a caller cannot grow usage rows or reports at
will: at most ``MAX_TAGS`` tags of at most ``MAX_TAG_CHARS`` characters from a plain alphabet.
"""

import re

from ops_gateway.core.errors import BadRequest

MAX_TAGS = 10
MAX_TAG_CHARS = 64
_TAG = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:/-]*")


def request_tags(header, body):
    """The request's tags, or raise 400 ``invalid_tags`` naming what is wrong."""
    given = [part.strip() for part in header.split(",") if part.strip()] if header else []
    metadata = body.get("metadata")
    listed = metadata.get("tags") if isinstance(metadata, dict) else None
    if listed is not None:
        if not isinstance(listed, list) or not all(isinstance(tag, str) for tag in listed):
            raise BadRequest("metadata.tags must be a list of strings", code="invalid_tags")
        given += listed
    tags = list(dict.fromkeys(given))
    for tag in tags:
        if len(tag) > MAX_TAG_CHARS or not _TAG.fullmatch(tag):
            message = f"a tag is 1-{MAX_TAG_CHARS} letters, digits or _.:/- starting with a letter or digit"
            raise BadRequest(message, {"tag": tag[:MAX_TAG_CHARS]}, code="invalid_tags")
    if len(tags) > MAX_TAGS:
        raise BadRequest(f"at most {MAX_TAGS} tags per request", {"tags": len(tags)}, code="invalid_tags")
    return tags
