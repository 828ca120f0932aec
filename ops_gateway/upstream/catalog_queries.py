"""The model catalogue's SQL: row 1 of ``model_catalog``, the list shared by every process.

Plain functions taking the cursor first and returning dicts.
"""

from psycopg2.extras import Json


def record_refresh_failure(cur, message):
    """Note a failed refresh (its error message) without touching the stored list."""
    cur.execute(
        "UPDATE model_catalog SET last_attempt_at = now(), last_error = %s, last_error_at = now(),"
        " refresh_failures = refresh_failures + 1 WHERE id = 1",
        (message,),
    )


def store_models(cur, models):
    """Replace the stored list with ``models`` and move to a new version."""
    cur.execute(
        "UPDATE model_catalog SET models = %s, fetched_at = now(), last_attempt_at = now(),"
        " refresh_count = refresh_count + 1, version = version + 1 WHERE id = 1",
        (Json(models),),
    )


def store_models_in_part(cur, models):
    """Replace the stored list after a refresh that read only some of upstream's lists: a new
    version, but the fetch time and refresh count unchanged (the refresh failed)."""
    cur.execute("UPDATE model_catalog SET models = %s, version = version + 1 WHERE id = 1", (Json(models),))


def locked_catalog_models(cur):
    """The stored list of normalised models, locked until the transaction ends (a refresh merges
    new entries into it: two refreshes must not each keep what the other replaced)."""
    cur.execute("SELECT models FROM model_catalog WHERE id = 1 FOR UPDATE")
    return cur.fetchone()["models"]


def catalog_head(cur):
    """The stored list's version and fetched_at."""
    cur.execute("SELECT version, fetched_at FROM model_catalog WHERE id = 1")
    return cur.fetchone()


def catalog_models(cur):
    """The stored list of normalised models."""
    cur.execute("SELECT models FROM model_catalog WHERE id = 1")
    return cur.fetchone()["models"]


def catalog_status(cur):
    """The stored list's size, its fetch and error times, and its refresh counters."""
    cur.execute(
        "SELECT jsonb_array_length(models) AS total, fetched_at, last_attempt_at, last_error, last_error_at,"
        " refresh_count, refresh_failures FROM model_catalog WHERE id = 1"
    )
    return cur.fetchone()
