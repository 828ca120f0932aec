"""Request tags (X-Gateway-Tags, metadata.tags) are kept with each usage record, bounded."""

import pytest

from tests.helpers import assert_error, bearer, create_user


def test_request_tags_from_header_and_metadata_are_kept_with_the_usage(client, upstream, sql):
    user, key = create_user(client, credits="1.00", plan="team")
    headers = {**bearer(key), "X-Gateway-Tags": "team-a, feature-x"}
    body = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "max_tokens": 5}
    body["metadata"] = {"tags": ["feature-x", "env:prod"]}
    assert client.post("/v1/chat/completions", json=body, headers=headers).status_code == 200
    assert sql("SELECT tags FROM usage_records WHERE user_id = %s", (user["id"],)) == [
        {"tags": ["team-a", "feature-x", "env:prod"]}
    ]


@pytest.mark.parametrize(
    ("header", "metadata"),
    [("x" * 65, None), ("bad tag", None), (",".join(f"t{i}" for i in range(11)), None), ("", {"tags": "a"})],
)
def test_bad_request_tags_are_a_400_after_the_key_and_nothing_is_held(client, upstream, sql, header, metadata):
    user, key = create_user(client, credits="1.00", plan="team")
    body = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "max_tokens": 5}
    if metadata:
        body["metadata"] = metadata
    response = client.post("/v1/chat/completions", json=body, headers={**bearer(key), "X-Gateway-Tags": header})
    assert_error(response, 400, "invalid_tags")
    assert_error(
        client.post("/v1/chat/completions", json=body, headers={"X-Gateway-Tags": header}), 401, "unauthorized"
    )
    assert sql("SELECT reserved_credits FROM users WHERE id = %s", (user["id"],)) == [{"reserved_credits": 0}]
    assert sql("SELECT count(*) AS n FROM usage_records") == [{"n": 0}]
