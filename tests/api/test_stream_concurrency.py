"""A stream holds its concurrency slot until it ends, not only until its view returned.

Flask runs a streamed request's teardown once when the view returns and again when the stream
ends; only the stream's end may give its slot back.
"""

import pytest

from tests.helpers import assert_error, bearer, create_user
from tests.helpers.upstream import SSE, UPSTREAM, chat, chunk, completion, sse


@pytest.fixture
def key(client, upstream, sql):
    sql("UPDATE plans SET max_concurrent_requests = 1 WHERE name = 'team'")
    return create_user(client, credits="5.00", plan="team")[1]


def test_an_open_stream_counts_against_max_concurrent_requests(client, key, upstream):
    events = sse(chunk("Hel"), chunk("lo"), chunk(usage={"prompt_tokens": 7, "completion_tokens": 2}), "[DONE]")
    upstream.post(f"{UPSTREAM}/chat/completions", [{"text": events, "headers": SSE}, {"json": completion()}])
    body = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    stream = client.post("/v1/chat/completions", json=body, headers=bearer(key), buffered=False)
    assert stream.status_code == 200
    error = assert_error(chat(client, key), 429, "rate_limited")
    assert error["details"]["window"] == "max_concurrent_requests"
    stream.get_data()
    stream.close()
    assert chat(client, key).status_code == 200
