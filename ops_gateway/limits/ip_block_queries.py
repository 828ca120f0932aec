"""The ip_blocks table (sql/0016): one row per IP block, the exact list behind GET /admin/blocked-ips.

Redis enforces a block (``security.BLOCK_KEY`` with a TTL); these rows are the record of it: who
set it, why and until when, for listing, and for putting the Redis keys back after Redis loses its
data (``ip_blocks.restore_blocks``). Plain functions taking the cursor first and returning dicts;
addresses come in their canonical spelling (``core.addresses.canonical_ip``), as the Redis keys do.
"""

BLOCK_COLUMNS = "host(address) AS address, reason, actor, since, expires_at"


def upsert_block(cur, address, reason, actor, seconds):
    """Record a block of ``address`` for ``seconds`` from now (replacing an earlier one); return its row.

    Expired rows are swept here: blocks are rare, so the table stays the size of the live list.
    """
    cur.execute("DELETE FROM ip_blocks WHERE expires_at <= now()")
    cur.execute(
        "INSERT INTO ip_blocks (address, reason, actor, since, expires_at)"
        " VALUES (%s, %s, %s, now(), now() + make_interval(secs => %s))"
        " ON CONFLICT (address) DO UPDATE SET reason = EXCLUDED.reason, actor = EXCLUDED.actor,"
        " since = EXCLUDED.since, expires_at = EXCLUDED.expires_at"
        f" RETURNING {BLOCK_COLUMNS}",
        (address, reason, actor, seconds),
    )
    return cur.fetchone()


def delete_block(cur, address):
    """Remove the row of ``address``; the row as it was if it was still in force, else None."""
    cur.execute(
        f"DELETE FROM ip_blocks WHERE address = %s RETURNING {BLOCK_COLUMNS}, expires_at > now() AS in_force",
        (address,),
    )
    row = cur.fetchone()
    return row if row and row.pop("in_force") else None


def blocks_in_force(cur):
    """Every block that has not expired, newest first."""
    cur.execute(f"SELECT {BLOCK_COLUMNS} FROM ip_blocks WHERE expires_at > now() ORDER BY since DESC, address")
    return cur.fetchall()


def lock_blocks_in_force(cur):
    """Every block that has not expired, locked until the transaction ends, with the whole seconds
    it has left (rounded up, at least 1).

    The lock makes a concurrent unblock (or re-block) wait for the restore, then apply after it.
    """
    cur.execute(
        "SELECT host(address) AS address,"
        " greatest(ceil(extract(epoch FROM expires_at - now())), 1)::integer AS remaining_seconds"
        " FROM ip_blocks WHERE expires_at > now() ORDER BY address FOR UPDATE"
    )
    return cur.fetchall()
