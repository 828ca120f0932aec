"""Iterators over the Server-Sent Events of one streamed OpenRouter call.

Chat completions send bare ``data:`` lines ending with ``[DONE]``; the Responses API names each
event (``event: response.output_text.delta``) and ends with ``response.completed``. One reader
parses both, per the SSE spec, so the two stream kinds cannot drift apart.

A comment (OpenRouter sends ``: OPENROUTER PROCESSING`` while a model thinks before its first
token) comes out as ``KEEP_ALIVE``: the relay passes it on, so the client's proxies see bytes
(Heroku's router drops a response silent for 55 s), and checks whether the stream must stop.
"""

import requests

from ops_gateway.upstream.failures import error_for_exception

KEEP_ALIVE = object()  # what iterating yields for a comment between events


class EventStream:
    """Iterator over the events of one streamed call; ``[DONE]`` (if upstream sends it) is the last."""

    def __init__(self, response, on_end):
        """Wrap an open streaming response; ``on_end(error_or_None)`` runs once at the end."""
        self._response = response
        self._on_end = on_end
        self._ended = False
        self._events = self._read_events()

    def __iter__(self):
        """Return the stream itself: events can be read only once."""
        return self

    def __next__(self):
        """Return the next event as soon as upstream has sent it."""
        return next(self._events)

    def close(self):
        """Close the upstream response (safe to call more than once, or after the end)."""
        self._events.close()
        self._end(None)

    def _item(self, name, data):
        """What iterating yields for one event: ``(name, data)``; name None for an unnamed event."""
        return name, data

    def _read_events(self):
        """Yield each event, its data lines joined per the SSE spec, and ``KEEP_ALIVE`` for a comment."""
        name, data_lines = None, []
        try:
            # Bytes, not decode_unicode: requests would guess latin-1 for text/event-stream.
            for line in self._response.iter_lines():
                if line.startswith(b"data:"):
                    data_lines.append(line[5:].removeprefix(b" ").decode("utf-8", "replace"))
                elif line.startswith(b"event:"):
                    name = line[6:].strip().decode("utf-8", "replace")
                elif line.startswith(b":") and not data_lines:
                    yield KEEP_ALIVE
                elif not line and data_lines:
                    data = "\n".join(data_lines)
                    yield self._item(name, data)
                    name, data_lines = None, []
                    if data == "[DONE]":
                        break
            else:
                if data_lines:  # the stream ended without the blank line closing its last event
                    yield self._item(name, "\n".join(data_lines))
        except requests.exceptions.RequestException as exc:
            error = error_for_exception(exc)
            self._end(error)
            raise error from exc
        self._end(None)

    def _end(self, error):
        """Release the connection and report the outcome, once."""
        if self._ended:
            return
        self._ended = True
        self._response.close()
        self._on_end(error)


class ChatCompletionStream(EventStream):
    """A streamed chat completion: yields each event's ``data`` payload, ``[DONE]`` last."""

    def _item(self, name, data):
        """Chat completion events are unnamed: only the payload matters."""
        return data


class ResponsesStream(EventStream):
    """A streamed Responses API call: yields ``(event name, data)`` pairs, passed through unchanged."""
