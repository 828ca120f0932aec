"""Property: whatever a client sends, every API operation answers success or a 4xx envelope, never
a 5xx (issue 15 #8).

Hypothesis builds the hostile inputs a schema-driven fuzzer rarely tries: NUL bytes, unicode
digits, huge and non-finite numbers (numbers a double cannot hold, such as ``1e400``, written
into the JSON text as they are), wrong types and deep nesting, in path segments, query arguments
(the operation's own, from the OpenAPI spec, and made-up ones) and JSON bodies (the operation's
own fields, and junk). Every /v1 POST also gets plausible bodies with hostile ``models`` lists
(issue 22); the Messages API routes get their key as ``x-api-key`` and any
``anthropic-version`` and ``anthropic-beta``, and must answer errors in Anthropic's shape.
Every route in the app's URL map outside the dashboard is covered, as the bootstrap admin and
as a user; OpenRouter is faked with requests-mock.
"""

import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.helpers import ADMIN, bearer, create_key, create_user, repeatable_examples
from tests.helpers.dashboard import sign_in

EXAMPLES_PER_OPERATION = 25
NOT_THE_API = ("/dashboard", "/static", "/docs", "/redoc")
HOSTILE_TEXT = ["a\x00b", "\x00", "²", "٣", "¹²³", "-1", "0", "9" * 40, "1e309", "NaN", "-Infinity", "", " ", "\u202e"]
HUGE_NUMBERS = [10**30, -(10**30), 2**63, -(2**63) - 1, 1e308, -1e308, 5e-324]
NON_FINITE = [float("nan"), float("inf"), float("-inf")]


class Literal(str):
    """JSON text written into a body as it is (json.dumps cannot write 1e400)."""


# Numbers a double cannot hold: Python's parser reads the first three as infinities.
OVERFLOWING = [
    Literal("1e400"),
    Literal("-1e400"),
    Literal("1E+400"),
    Literal("1" + "0" * 400),
    Literal("-" + "9" * 312 + ".5"),
]

texts = st.one_of(st.sampled_from(HOSTILE_TEXT), st.text(max_size=30))
leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from(HUGE_NUMBERS + NON_FINITE + OVERFLOWING),
    st.floats(),
    texts,
)
json_values = st.recursive(
    leaves,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(texts, inner, max_size=4)),
    max_leaves=12,
)


# ``models`` as a client can send it: nested lists, objects, numbers, too many, too long, not a list.
MODEL_ID = "openai/gpt-4o-mini"
MODELS_SHAPES = [
    [["x"]],
    [{"a": 1}],
    [1],
    [None],
    [""],
    ["a" * 201],
    [MODEL_ID] * 11,
    [MODEL_ID] * 10,
    [MODEL_ID, "unknown/model"],
    [Literal("1e400")],
    "x",
    {"a": 1},
    None,
]
metered_bodies = st.fixed_dictionaries(
    {
        "model": st.one_of(st.just(MODEL_ID), texts),
        "messages": st.just([{"role": "user", "content": "hi"}]),
        "input": st.one_of(st.just("hi"), json_values),
        "models": st.sampled_from(MODELS_SHAPES),
    },
    optional={"max_tokens": leaves, "temperature": leaves, "stream": st.booleans()},
)


def to_json(value):
    """``value`` as JSON text, ``Literal`` strings written as they are."""
    if isinstance(value, Literal):
        return str(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(key)}: {to_json(item)}" for key, item in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(to_json(item) for item in value) + "]"
    return json.dumps(value)


def nested(value, depth):
    """``value`` as JSON text inside ``depth`` arrays."""
    return "[" * depth + to_json(value) + "]" * depth


def openapi_fields(spec, path, method):
    """(query argument names, JSON body field names) the spec documents for an operation."""
    operation = spec["paths"].get(path, {}).get(method.lower(), {})
    query = [p["name"] for p in operation.get("parameters", []) if p.get("in") == "query"]
    body = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
    if "$ref" in body:
        body = spec["components"]["schemas"][body["$ref"].rsplit("/", 1)[-1]]
    return query, list(body.get("properties", {}))


def operations(app, spec):
    """(method, werkzeug rule, query names, body field names) for every API operation."""
    found = []
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith(NOT_THE_API) or rule.endpoint == "admin_models.refresh_models":
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            found.append((method, rule, *openapi_fields(spec, path, method)))
    return found


@st.composite
def hostile_requests(draw, rule, query_names, body_fields, known_ids, method="GET"):
    """A URL and a raw JSON body for ``rule``, with hostile values wherever a client can put them."""
    url = rule.rule
    for placeholder, converter in re.findall(r"(<(?:(\w+):)?\w+>)", rule.rule):
        if converter == "int":
            value = draw(st.one_of(st.sampled_from(known_ids), st.integers(min_value=0, max_value=2**70)))
        else:
            value = draw(texts.filter(lambda text: "/" not in text and text not in (".", "..")))
        url = url.replace(placeholder, str(value), 1)
    names = st.sampled_from(query_names + ["junk"]) if query_names else st.just("junk")
    args = draw(st.dictionaries(names, texts, max_size=3))
    fields = st.sampled_from(body_fields) if body_fields else texts
    bodies = [st.dictionaries(fields, json_values, max_size=5), json_values]
    if rule.rule.startswith("/v1/") and method == "POST":
        bodies.append(metered_bodies)
    body = draw(st.one_of(*bodies))
    depth = draw(st.sampled_from([0, 0, 0, 40, 2000, 100_000]))
    return url, args, nested(body, depth)


def assert_never_a_server_error(response, method, url, args, body):
    """Success, or a 4xx in the error envelope; never a success for a body with a number a double
    cannot hold."""
    where = (method, url, args, body[:200])
    assert response.status_code < 500, (where, response.get_data(as_text=True)[:300])
    if any(number in body for number in OVERFLOWING):
        assert response.status_code >= 400, where
    if response.status_code >= 400 and method != "HEAD" and response.mimetype == "application/json":
        body = response.get_json()
        if url.startswith("/v1/messages"):  # Anthropic's shape, the gateway's code inside
            assert body["type"] == "error" and body["error"]["type"], where
            error = body["error"]
        else:
            error = body["error"]
            assert error["status"] == response.status_code, where
        assert error["code"] and error["message"], where


# The Messages API's headers as a client can send them: its key, and versions and betas of any text.
HEADER_TEXT = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40)


def fuzz_operation(client, method, requests, headers):
    """Send one operation's generated requests and check each answer."""

    @given(request=requests, version=HEADER_TEXT, beta=HEADER_TEXT)
    @repeatable_examples(EXAMPLES_PER_OPERATION)
    def run(request, version, beta):
        url, args, body = request
        sent = {**headers, "anthropic-version": version, "anthropic-beta": beta} if "x-api-key" in headers else headers
        response = client.open(
            url, method=method, query_string=args, data=body, content_type="application/json", headers=sent
        )
        try:
            assert_never_a_server_error(response, method, url, args, body)
        finally:
            response.close()  # a streamed answer (the audit report) holds its connection until closed

    run()


@pytest.mark.slow  # hundreds of generated bodies
def test_hostile_input_never_gets_a_server_error(make_app, upstream):
    # Thousands of refusals from one address: lift the brute-force block and the admin IP limit.
    app = make_app(AUTH_FAILURE_LIMIT="100000 per 5 minutes", ADMIN_RATE_LIMIT="100000 per minute")
    client = app.test_client()
    victim, _ = create_user(client, credits="5.00")
    user, key = create_user(client, credits="1000.00", plan="enterprise")
    other_key, _ = create_key(client, key, name="spare")
    known_ids = [victim["id"], user["id"], other_key["id"], 0]
    spec = client.get("/openapi.json").get_json()
    found = operations(app, spec)
    assert len(found) >= 25
    for method, rule, query_names, body_fields in found:
        headers = ADMIN if rule.rule.startswith("/admin") else bearer(key)
        if rule.rule.startswith("/v1/messages"):
            headers = {"x-api-key": key}
        requests = hostile_requests(rule, query_names, body_fields, known_ids, method)
        fuzz_operation(client, method, requests, headers)


def check_dashboard_page(client, url, names):
    """Hostile query arguments on one dashboard page: the page, or an HTML 4xx."""

    @given(args=st.dictionaries(names, texts, max_size=3))
    @repeatable_examples(8)
    def run(args):
        response = client.get(url, query_string=args)
        assert response.status_code < 500, (url, args, response.get_data(as_text=True)[:300])
        if response.status_code >= 400:
            assert response.mimetype == "text/html", (url, args)

    run()


def test_hostile_query_arguments_never_get_a_server_error_on_dashboard_pages(client):
    assert sign_in(client).status_code == 302
    victim, _ = create_user(client)
    pages = [
        rule
        for rule in client.application.url_map.iter_rules()
        if rule.rule.startswith("/dashboard") and "GET" in rule.methods
    ]
    assert len(pages) >= 5
    names = st.sampled_from(
        ["page", "q", "user_id", "key_id", "action", "type", "ip", "start", "end", "cursor", "status"]
    )
    for rule in pages:
        check_dashboard_page(client, re.sub(r"<(?:\w+:)?\w+>", str(victim["id"]), rule.rule), names)
