"""The fake's generation records and ``GET /api/v1/generation?id=<id>``, in OpenRouter's shape.

Every generation the fake serves (chat, embeddings, Responses, Messages; streamed or not, finished
or cut) is recorded when it ends: the model that answered (the routed one), the router asked for,
tokens, whether it was streamed and whether it was cancelled (the client went away, or
``cut_stream_after`` dropped it), and what it billed: the prompt plus the output produced, at the catalogue's prices
times ``cost_multiplier``. A cancelled stream is billed for the chunks produced before the cut, as
OpenRouter bills a stream the client aborts. The record answers 404 (OpenRouter's "Generation not
found") until ``generation_delay_ms`` after the request finished; a missing ``id`` is a 400. Like
every route of the fake, it does not check the API key.

Records must be seen by every process of the fake and cost next to nothing to write (benchmarks
serve thousands of requests a second), so each process writes its own file in a directory beside
the state file: a ring of SLOTS slots of SLOT_BYTES, the record of generation number n in slot
(n - 1) % SLOTS. A generation id names its writer's file and its number, so writing is one
``pwrite`` and reading one ``pread``, from any process, with no lock; the reader checks that the slot
still holds the id asked for. Each process keeps its last SLOTS generations; an older one is gone,
404 like an unknown id. A slot holds one JSON object padded with spaces (``_RECORD``): the facts the
bill follows from (model, tokens, the multiplier in force), the total cost computed when it is read.
"""

import datetime
import itertools
import json
import os
import re
import time
from urllib.parse import parse_qs

from devtools.fake_openrouter.catalogue import COST_PLACEHOLDER, PROVIDERS, cost, dumps_with_cost
from devtools.fake_openrouter.replies import JSON_HEADERS, error_reply

SLOTS = 65536
SLOT_BYTES = 512
_SUFFIX = ".slots"
# Everything put in is JSON-safe as it is: ids and models are ASCII without quotes, the rest numbers;
# a record takes under 400 bytes, so it never spills into the next slot.
# Times are integer microseconds since the epoch: formatting floats would cost more than the write.
_RECORD = (
    '{"id": "%s", "api_type": "%s", "model": "%s", "router": %s, "streamed": %s, "cancelled": %s, '
    '"tokens_prompt": %d, "tokens_completion": %d, "cost_multiplier": %r, "created_us": %d, "finished_us": %d}'
)
_ID = re.compile(r"[a-z_-]+?(\d+-\d+)-([1-9]\d*)")  # (writer, number) of an id this fake gave out
_writers_in_process = itertools.count(1)  # two fakes in one process (the tests) write apart


def generations_directory(state_file):
    """The directory of generation records of the fake whose switches are in state_file."""
    return f"{os.path.splitext(os.fspath(state_file))[0]}.generations"


class GenerationLog:
    """Generation records shared by the fake's processes; each process writes its own ring file."""

    def __init__(self, directory):
        """Keep records in directory (made on the first write)."""
        self.directory = directory
        self._writer = None

    def begin(self, prefix, api_type, model, router, streamed, prompt_tokens, multiplier):
        """A new generation with an id unique across the fake's processes, recorded by its ``finish``."""
        writer = self._writer
        if writer is None or writer.pid != os.getpid():  # a forked worker writes its own file
            writer = self._writer = _Writer(self.directory)
        number = next(writer.numbers)
        generation_id = f"{prefix}{writer.token}-{number}"
        return Generation(generation_id, number, api_type, model, router, streamed, prompt_tokens, multiplier, writer)

    def find(self, generation_id):
        """The record of generation_id as a dict (plus its ``total_cost``, a Decimal), or None if none."""
        match = _ID.fullmatch(generation_id)
        if not match:
            return None
        writer, number = match[1], int(match[2])
        try:
            fd = os.open(os.path.join(self.directory, writer + _SUFFIX), os.O_RDONLY)
        except OSError:
            return None
        try:
            slot = os.pread(fd, SLOT_BYTES, (number - 1) % SLOTS * SLOT_BYTES).rstrip(b" \0")
        finally:
            os.close(fd)
        try:
            record = json.loads(slot)
        except ValueError:  # never written (a hole reads as zeros)
            return None
        if record["id"] != generation_id:
            return None  # the slot was reused by a later generation
        tokens = record["tokens_prompt"], record["tokens_completion"]
        return {**record, "total_cost": cost(record["model"], *tokens, record["cost_multiplier"])}

    def clear(self):
        """Delete every record (a new run of the fake must not answer for an old one's ids)."""
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return
        for name in names:
            if name.endswith(_SUFFIX):
                os.unlink(os.path.join(self.directory, name))


class _Writer:
    """This process's ring file, and the numbers of the generations it records."""

    def __init__(self, directory):
        os.makedirs(directory, exist_ok=True)
        self.pid = os.getpid()
        self.token = f"{self.pid}-{next(_writers_in_process)}"
        self.numbers = itertools.count(1)
        # A file object, not a bare descriptor, so a fake that is dropped (tests) closes it.
        self.file = open(os.path.join(directory, self.token + _SUFFIX), "wb", buffering=0)  # noqa: SIM115


class Generation:
    """One generation being served: its id, what answers it, its prompt, and how it is recorded."""

    __slots__ = (
        *("id", "_number", "_writer", "api_type", "model", "router", "streamed"),
        *("prompt_tokens", "multiplier", "created"),
    )

    def __init__(self, generation_id, number, api_type, model, router, streamed, prompt_tokens, multiplier, writer):
        """Start it now; ``model`` is the model that answers, ``router`` the router asked for (or None)."""
        self.id, self._number, self._writer = generation_id, number, writer
        self.api_type, self.model, self.router, self.streamed = api_type, model, router, streamed
        self.prompt_tokens, self.multiplier, self.created = prompt_tokens, multiplier, time.time_ns() // 1000

    def cost(self, completion_tokens):
        """What the prompt and completion_tokens of output cost, at the model's price times the multiplier."""
        return cost(self.model, self.prompt_tokens, completion_tokens, self.multiplier)

    def finish(self, completion_tokens, cancelled=False):
        """Record the generation as ended, having produced completion_tokens (billed with the prompt)."""
        router = f'"{self.router}"' if self.router else "null"
        flags = ("true" if self.streamed else "false", "true" if cancelled else "false")
        record = _RECORD % (
            *(self.id, self.api_type, self.model, router, *flags, self.prompt_tokens, completion_tokens),
            *(self.multiplier, self.created, time.time_ns() // 1000),
        )
        slot = (self._number - 1) % SLOTS * SLOT_BYTES
        os.pwrite(self._writer.file.fileno(), record.encode().ljust(SLOT_BYTES), slot)


def generation_reply(log, query, delay_ms):
    """The reply to ``GET /api/v1/generation?<query>``: the record, once delay_ms after it ended."""
    generation_id = parse_qs(query).get("id", [""])[0]
    if not generation_id:
        return error_reply(400, "id is required")
    record = log.find(generation_id)
    if record is None or time.time_ns() // 1000 < record["finished_us"] + delay_ms * 1000:
        return error_reply(404, "Generation not found")
    return 200, JSON_HEADERS, dumps_with_cost({"data": _generation_data(record)}, record["total_cost"]).encode()


def _generation_data(record):
    """OpenRouter's generation object for a record (what the fake does not know is null)."""
    tokens_prompt, tokens_completion = record["tokens_prompt"], record["tokens_completion"]
    milliseconds = round((record["finished_us"] - record["created_us"]) / 1000)
    finished = "stop" if record["api_type"] == "completions" and not record["cancelled"] else None
    created = datetime.datetime.fromtimestamp(record["created_us"] / 1_000_000, datetime.UTC)
    return {
        "id": record["id"],
        "upstream_id": None,
        "total_cost": COST_PLACEHOLDER,
        "cache_discount": None,
        "upstream_inference_cost": None,
        "created_at": created.isoformat(),
        "model": record["model"],
        "app_id": None,
        "streamed": record["streamed"],
        "cancelled": record["cancelled"],
        "provider_name": PROVIDERS[record["model"]],
        "latency": milliseconds,
        "moderation_latency": None,
        "generation_time": milliseconds,
        "finish_reason": finished,
        "native_finish_reason": finished,
        "tokens_prompt": tokens_prompt,
        "tokens_completion": tokens_completion,
        "native_tokens_prompt": tokens_prompt,
        "native_tokens_completion": tokens_completion,
        "native_tokens_completion_images": 0,
        "native_tokens_reasoning": 0,
        "native_tokens_cached": 0,
        "num_media_prompt": None,
        "num_input_audio_prompt": None,
        "num_media_completion": None,
        "num_search_results": None,
        "origin": "",
        "usage": COST_PLACEHOLDER,
        "is_byok": False,
        "external_user": None,
        "api_type": record["api_type"],
        "router": record["router"],
    }
