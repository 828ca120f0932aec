"""The yardstick the targets were set against: a bare Flask proxy on the same stack.

Per completion it does one Postgres read (the key by its hash), one Redis write, the upstream
call with ``requests`` and one Postgres write, and nothing else: no limits, holds, ledger,
schemas, logging or metrics. ``bench/baseline.py`` runs it under gunicorn like the gateway, with
the same worker class; under gevent its pool waits (as the gateway's does) and psycopg2 waits
through gevent's hub.
"""

import os
import threading

import psycopg2
import redis
import requests
from flask import Flask, Response, request

from ops_gateway.accounts import key_material
from ops_gateway.core.db import WaitingPool

app = Flask(__name__)
_upstream = requests.Session()
_state = {}
_lock = threading.Lock()


def _pool():
    """One pool per worker process (made after gunicorn forks)."""
    with _lock:
        if _state.get("pid") == os.getpid():
            return _state["pool"]
        if os.environ.get("WEB_WORKER_CLASS") == "gevent":
            from psycogreen.gevent import patch_psycopg

            patch_psycopg()
        _state["pool"] = WaitingPool(16, 30, lambda: psycopg2.connect(os.environ["DATABASE_URL"]))
        _state["redis"] = redis.Redis.from_url(os.environ["REDIS_URL"])
        _state["pid"] = os.getpid()
        return _state["pool"]


@app.post("/v1/chat/completions")
def chat_completions():
    """Look the key up, count the request, call upstream, record it."""
    pool = _pool()
    digest = key_material.hash_key(
        os.environ["KEY_HASH_SECRET"], request.headers["Authorization"].removeprefix("Bearer ")
    )
    conn = pool.getconn()
    conn.autocommit = True  # one round trip per statement
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT user_id FROM api_keys WHERE key_hash = %s", (digest,))
            (user_id,) = cur.fetchone()
        _state["redis"].incr(f"bare:{user_id}")
        upstream = _upstream.post(
            os.environ["OPENROUTER_BASE_URL"] + "/chat/completions",
            data=request.get_data(),
            headers={"Content-Type": "application/json"},
            timeout=30,
        )
        with conn.cursor() as cur:
            cur.execute(
                "INSERT INTO bare_proxy_requests (user_id, status) VALUES (%s, %s)", (user_id, upstream.status_code)
            )
    finally:
        pool.putconn(conn)
    return Response(upstream.content, upstream.status_code, mimetype="application/json")
