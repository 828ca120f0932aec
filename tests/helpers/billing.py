"""What a user was charged, for API tests: their books after a request, and a stream the client cut."""


def books(sql, user_id):
    """The user's balance and holds, the ledger's sum and every usage row, with the open holds."""
    [user] = sql("SELECT credits, reserved_credits FROM users WHERE id = %s", (user_id,))
    [ledger] = sql(
        "SELECT coalesce(sum(amount), 0) AS spent, count(*) AS rows FROM credit_transactions"
        " WHERE user_id = %s AND kind IN ('usage', 'usage_reconciled')",
        (user_id,),
    )
    usage = sql(
        "SELECT status, cost, upstream_cost, prompt_tokens, completion_tokens FROM usage_records"
        " WHERE user_id = %s ORDER BY id",
        (user_id,),
    )
    [holds] = sql("SELECT coalesce(sum(amount), 0) AS held FROM credit_holds WHERE user_id = %s", (user_id,))
    return {**user, **ledger, "usage": usage, "held": holds["held"]}


def cut_after(response, events):
    """Read ``events`` server-sent events of a streamed response, then hang up."""
    chunks = iter(response.response)
    received = "".join(next(chunks).decode() for _ in range(events))
    response.close()
    return received
