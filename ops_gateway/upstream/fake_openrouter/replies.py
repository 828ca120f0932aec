"""What every route of the fake shares: reply shapes, the reply's words and the prompt's token count.

Text is cheap and deterministic: an answer of N tokens is the words ``word0 .. word{N-1}``.
"""

import json

DEFAULT_COMPLETION_TOKENS = 16
MAX_COMPLETION_TOKENS = 256
PROMPT_BYTES_PER_TOKEN = 4
JSON_HEADERS = (("Content-Type", "application/json"),)
SSE_HEADERS = (("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache"))
WORDS = [f"word{i}" for i in range(MAX_COMPLETION_TOKENS)]
REPLIES = [" ".join(WORDS[:count]) for count in range(MAX_COMPLETION_TOKENS + 1)]


def json_reply(data, status=200, headers=()):
    """A JSON reply."""
    return status, (*JSON_HEADERS, *headers), json.dumps(data).encode()


def error_reply(status, message, headers=()):
    """An OpenAI/OpenRouter-style error reply."""
    return json_reply({"error": {"message": message, "code": status}}, status, headers)


def parsed_json(body):
    """The body's JSON, or None when it is not JSON."""
    try:
        return json.loads(body)
    except ValueError:
        return None


def flag(request, field, switch):
    """Whether request[field] is an object with switch set to true."""
    options = request.get(field)
    return isinstance(options, dict) and options.get(switch) is True


def prompt_tokens(fields):
    """One token per PROMPT_BYTES_PER_TOKEN bytes of the fields, serialised compactly as one object.

    Re-serialising (rather than measuring the body as received) keeps the count independent of the
    sender's whitespace, and of option fields such as ``usage`` that the gateway adds.
    """
    serialised = json.dumps(fields, ensure_ascii=False, separators=(",", ":"))
    return len(serialised.encode()) // PROMPT_BYTES_PER_TOKEN


def output_length(asked):
    """How many words to answer: what was asked (validated positive, or None), within the cap."""
    return min(asked or DEFAULT_COMPLETION_TOKENS, MAX_COMPLETION_TOKENS)


def positive_int_problem(request, *fields):
    """Why one of the fields (when given) is not a positive integer, or None."""
    for field in fields:
        value = request.get(field)
        if value is not None and not (isinstance(value, int) and not isinstance(value, bool) and value > 0):
            return 400, f"{field} must be a positive integer"
    return None
