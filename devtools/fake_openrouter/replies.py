"""What every route of the fake shares: reply shapes, the reply's words and the prompt's token count.

Text is cheap and deterministic: an answer of N tokens is the words ``word0 .. word{N-1}``. Answers
up to MAX_COMPLETION_TOKENS are built at import; a longer one (the ``long_answer_tokens`` switch)
is built once and kept while the switch stays, so a long answer costs what a short one does.
"""

import functools
import json

import gevent

DEFAULT_COMPLETION_TOKENS = 16
MAX_COMPLETION_TOKENS = 256
PROMPT_BYTES_PER_TOKEN = 4
JSON_HEADERS = (("Content-Type", "application/json"),)
SSE_HEADERS = (("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache"))
WORDS = [f"word{i}" for i in range(MAX_COMPLETION_TOKENS)]
REPLIES = [" ".join(WORDS[:count]) for count in range(MAX_COMPLETION_TOKENS + 1)]
# A string value no real data contains: json_template splits a JSON text where it stands.
SLOT = "\0slot\0"
NOT_AN_OBJECT = (400, "request body must be a JSON object")


class StreamCut(Exception):  # noqa: N818 - it names what happens, as StopIteration does
    """Raised by a stream's events where the server must drop the connection (``cut_stream_after``)."""


class StreamRecord:
    """What a streamed answer has sent of its output, recorded on its generation when the stream ends:
    finished, or cancelled after what was sent (cut, or the client went away)."""

    def __init__(self, generation):
        self.generation = generation
        self.produced = 0
        self.finished = False

    def paced(self, deltas, delay_ms, cut_after, tokens_each=1):
        """Yield each output delta when it is due (``chunk_delay_ms``), counting ``tokens_each`` per
        delta; after ``cut_after`` of them (when not None) the connection drops (StreamCut)."""
        sent = 0
        for sent, delta in enumerate(deltas, start=1):
            if sent - 1 == cut_after:
                raise StreamCut
            if delay_ms:
                gevent.sleep(delay_ms / 1000)
            self.produced += tokens_each
            yield delta
        if sent == cut_after:
            raise StreamCut
        self.finished = True  # every token is out: what follows cannot cancel it

    def close(self):
        """Record the generation (the stream's ``finally``)."""
        self.generation.finish(self.produced, cancelled=not self.finished)


def words(count):
    """The first count words of every answer."""
    return WORDS[:count] if count <= MAX_COMPLETION_TOKENS else _long_words(count)


def reply_text(count):
    """An answer of count words, separated by spaces."""
    return REPLIES[count] if count <= MAX_COMPLETION_TOKENS else _long_reply(count)


@functools.lru_cache(maxsize=4)
def _long_words(count):
    """The words of an answer longer than the prebuilt ones."""
    return tuple(f"word{index}" for index in range(count))


@functools.lru_cache(maxsize=4)
def _long_reply(count):
    """An answer longer than the prebuilt ones."""
    return " ".join(_long_words(count))


def json_template(data):
    """data's JSON cut where its SLOT values stand: join the parts with JSON texts in between.

    A stream of thousands of events then costs one json.dumps, not one each.
    """
    return json.dumps(data).split(json.dumps(SLOT))


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


# Request options that steer generation rather than give it text: not billed as prompt. A field
# not named here (messages, system, tools, response_format, one the fake has never heard of) counts.
NOT_PROMPT_FIELDS = frozenset(
    {
        *("model", "models", "provider", "route", "transforms", "user", "plugins", "session_id", "trace"),
        *("stream", "stream_options", "usage", "max_tokens", "max_completion_tokens", "stop", "n", "seed"),
        *("temperature", "top_p", "top_k", "min_p", "top_a", "logit_bias", "logprobs", "top_logprobs"),
        *("frequency_penalty", "presence_penalty", "repetition_penalty", "parallel_tool_calls", "reasoning"),
        *("stop_sequences", "metadata", "thinking", "service_tier", "speed"),  # the Messages API's options
    }
)


def request_prompt_tokens(request):
    """The prompt tokens of a chat or Messages API request: its fields but NOT_PROMPT_FIELDS (prompt_tokens)."""
    return prompt_tokens({field: value for field, value in request.items() if field not in NOT_PROMPT_FIELDS})


def prompt_tokens(fields):
    """One token per PROMPT_BYTES_PER_TOKEN bytes of the fields, serialised compactly as one object.

    Re-serialising (rather than measuring the body as received) keeps the count independent of the
    sender's whitespace, and of option fields such as ``usage`` that the gateway adds.
    """
    serialised = json.dumps(fields, ensure_ascii=False, separators=(",", ":"))
    return len(serialised.encode()) // PROMPT_BYTES_PER_TOKEN


def output_length(asked, long_answer_tokens=None):
    """How many words to answer: what was asked (validated positive, or None) within the cap; with
    no limit asked, long_answer_tokens (the switch) when set, else DEFAULT_COMPLETION_TOKENS."""
    if asked is None and long_answer_tokens:
        return long_answer_tokens
    return min(asked or DEFAULT_COMPLETION_TOKENS, MAX_COMPLETION_TOKENS)


def positive_int_problem(request, *fields):
    """Why one of the fields (when given) is not a positive integer, or None."""
    for field in fields:
        value = request.get(field)
        if value is not None and not (isinstance(value, int) and not isinstance(value, bool) and value > 0):
            return 400, f"{field} must be a positive integer"
    return None
