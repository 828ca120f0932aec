"""Talking to the fake OpenRouter in its own tests: a keep-alive client of one served fake, its
routes and request bodies, the models' prices, and readers for its answers, SSE bodies and
generation records."""

import json
from decimal import Decimal

import requests

COMPLETIONS = "/api/v1/chat/completions"
EMBEDDINGS = "/api/v1/embeddings"
RESPONSES = "/api/v1/responses"
GENERATION = "/api/v1/generation"
EMBED = {"model": "openai/text-embedding-3-small", "input": "hello"}
RESPOND = {"model": "openai/gpt-4o-mini", "input": "hello"}
WORDS_16 = " ".join(f"word{i}" for i in range(16))
MINI = ("openai/gpt-4o-mini", Decimal("0.00000015"), Decimal("0.0000006"))
SONNET = ("anthropic/claude-3.5-sonnet", Decimal("0.000003"), Decimal("0.000015"))


class Client:
    """A keep-alive HTTP session against one fake, taking paths instead of URLs."""

    def __init__(self, port):
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.session = requests.Session()

    def get(self, path, **options):
        return self.session.get(self.url + path, timeout=10, **options)

    def post(self, path, **options):
        return self.session.post(self.url + path, timeout=10, **options)


def ask(client, content="x" * 40, **fields):
    """POST one user message to the completions route."""
    body = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": content}], **fields}
    return client.post(COMPLETIONS, json=body)


def sse_payloads(response):
    """Split an SSE body into its data payloads."""
    events = response.text.split("\n\n")
    assert events.pop() == ""  # every event, [DONE] included, ends with a blank line
    assert all(event.startswith("data: ") for event in events)
    return [event.removeprefix("data: ") for event in events]


def exact(response):
    """The response's JSON with numbers as Decimal, so costs compare exactly."""
    return json.loads(response.text, parse_float=Decimal)


def named_events(response):
    """Split a Responses API SSE body into (event name, parsed data) pairs."""
    events = []
    for block in response.text.split("\n\n")[:-1]:
        name_line, data_line = block.split("\n")
        events.append((name_line.removeprefix("event: "), json.loads(data_line.removeprefix("data: "))))
    return events


def priced(model, prompt_tokens, completion_tokens, factor=Decimal(1)):
    """What the tokens cost at model's (id, prompt price, completion price), times factor."""
    _, prompt_price, completion_price = model
    return (prompt_tokens * prompt_price + completion_tokens * completion_price) * factor


def generation(client, generation_id):
    """GET the generation record of generation_id; the response."""
    return client.get(GENERATION, params={"id": generation_id})


def record_of(client, generation_id):
    """The generation record's data, numbers as Decimal; fails unless it is there."""
    response = generation(client, generation_id)
    assert response.status_code == 200, response.text
    return exact(response)["data"]
