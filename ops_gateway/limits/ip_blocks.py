"""Admin control of IP blocks: the exact list, a manual block with a TTL, unblocking, and
restoring blocks that Redis lost.

A block is enforced by a Redis key with a TTL (``security.block_key``, checked on every request
by ``security.check_ip_block``) and recorded by a row in ``ip_blocks`` (who, why, until when)
written in the same step, so the list comes from Postgres in one query on any Redis topology.
Postgres is the record: after a Redis flush or restart the ``restore_ip_blocks`` job sets the
missing keys again from the rows (``restore_blocks``). Every manual block and unblock is a
security event naming the admin.
"""

import redis
from flask import current_app
from limits import parse

from ops_gateway.core import db, redis_store
from ops_gateway.core.addresses import canonical_ip
from ops_gateway.core.errors import BadRequest, Conflict, NotFound, Unavailable
from ops_gateway.limits import ip_block_queries, security

MIN_BLOCK_SECONDS = 60  # the bounds of a manual block (POST /admin/blocked-ips ttl_seconds)
MAX_BLOCK_SECONDS = 30 * 86400


def block_address(text):
    """An admin's ``text`` as one IPv4 or IPv6 address in its canonical spelling
    (``addresses.canonical_ip``, as clients' addresses are written); 400 ``invalid_ip`` otherwise.

    The canonical spelling is what Redis keys and rows are keyed by, so ``2001:DB8::0:1`` and
    ``2001:db8::1`` (or ``::ffff:192.0.2.1`` and ``192.0.2.1``) name the same block.
    """
    address = canonical_ip(text)
    if address is None or "%" in address:  # a scope (fe80::1%eth0) names no client
        raise BadRequest("not an IPv4 or IPv6 address", {"ip": text[:100]}, code="invalid_ip")
    return address


def _redis_call(operation):
    """Run a Redis command; 503 when Redis is unreachable (a block must not be half set or half lifted)."""
    try:
        return operation(redis_store.get_redis())
    except redis.RedisError as exc:
        raise Unavailable("Redis is unreachable; try again", code="redis_unavailable") from exc


def list_blocks(cur):
    """Every IP block in force, newest first."""
    return ip_block_queries.blocks_in_force(cur)


def block_ip(cur, ip, seconds, reason, actor, caller_ip=None):
    """Block ``ip`` for ``seconds`` (replacing any block it has); return the block.

    Refuses the caller's own address (409 ``own_ip``, both in their canonical spelling): it
    would lock the admin out of the API that lifts the block.
    """
    address = block_address(ip)
    if caller_ip and address == canonical_ip(caller_ip):
        raise Conflict("you cannot block the address you are calling from", {"ip": address}, code="own_ip")
    row = ip_block_queries.upsert_block(cur, address, reason, actor, seconds)
    _redis_call(lambda cache: cache.set(security.block_key(address), 1, ex=seconds))
    security.record_event(
        cur, "ip_blocked", ip=address, details={"reason": reason, "block_seconds": seconds, "actor": actor}
    )
    return row


def unblock_ip(cur, ip, actor):
    """Lift the block of ``ip`` at once (row and Redis key); 404 ``ip_not_blocked`` when there is none."""
    address = block_address(ip)
    row = ip_block_queries.delete_block(cur, address)
    removed = _redis_call(lambda cache: cache.delete(security.block_key(address)))
    # A fresh start: with its failure window still full, the next failure would block it again.
    failure_limit = parse(current_app.config["AUTH_FAILURE_LIMIT"])
    _redis_call(lambda _: security.window_limiter().clear(failure_limit, "authfail", address))
    if row is None and not removed:
        raise NotFound(f"{address} is not blocked", {"ip": address}, code="ip_not_blocked")
    details = {"actor": actor, "reason": row["reason"] if row else None}
    security.record_event(cur, "ip_unblocked", ip=address, details=details)


def restore_blocks():
    """Set the Redis key of every block in force that Redis has lost, with the time the block has left.

    Keys still present are left alone (``SET NX``). The rows stay locked while the keys are set, so
    an unblock running meanwhile deletes its key after the restore and is never undone by it.
    Returns ``{"blocks_in_force": n, "restored": m}``.
    """
    with db.transaction() as cur:
        blocks = ip_block_queries.lock_blocks_in_force(cur)
        if not blocks:
            return {"blocks_in_force": 0, "restored": 0}
        # Not a transaction: each key is on its own (on a cluster, in its own slot).
        with redis_store.get_redis().pipeline(transaction=False) as pipe:
            for block in blocks:
                key = security.block_key(block["address"])
                pipe.set(key, 1, ex=block["remaining_seconds"], nx=True)
            restored = sum(1 for was_set in pipe.execute() if was_set)
    return {"blocks_in_force": len(blocks), "restored": restored}
