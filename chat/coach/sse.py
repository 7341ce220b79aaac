"""An incremental `text/event-stream` decoder: network chunks in, complete events out.

The openai SDK's own stream builds pydantic models for every chunk, which cost most of
the server's CPU per token (see `bench/results.md`); `chat.providers` reads the raw body
through the SDK instead and decodes the events here. Lines are split on bytes and each
event's data is left as bytes (``json.loads`` reads UTF-8 bytes), so a multi-byte
character or a line cut across two network reads is put back together before decoding.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Event:
    """One server-sent event: its ``event:`` name ("" when absent) and its data lines joined."""

    name: str
    data: bytes


class SSEDecoder:
    """Feed it the body as it arrives; it returns the events each chunk completed."""

    __slots__ = ("_data", "_name", "_rest", "_skip_lf")

    def __init__(self) -> None:
        self._rest = b""  # an unfinished line carried over to the next chunk
        self._data: list[bytes] = []
        self._name = ""
        self._skip_lf = False

    def feed(self, chunk: bytes) -> list[Event]:
        """The events completed by this chunk, in order."""
        if self._skip_lf:
            # The last chunk ended with CR: it ended the line, so an LF now is its other half.
            self._skip_lf = False
            if chunk.startswith(b"\n"):
                chunk = chunk[1:]
        buffer = self._rest + chunk if self._rest else chunk
        if b"\r" in buffer:
            # CRLF and a lone CR end lines too.
            self._skip_lf = buffer.endswith(b"\r")
            buffer = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = buffer.split(b"\n")
        self._rest = lines.pop()
        events: list[Event] = []
        for line in lines:
            if not line:
                if self._data:
                    events.append(Event(self._name, b"\n".join(self._data)))
                self._data = []
                self._name = ""
            elif line.startswith(b"data:"):
                value = line[5:]
                self._data.append(value[1:] if value.startswith(b" ") else value)
            elif line.startswith(b"event:"):
                self._name = line[6:].strip().decode("utf-8", "replace")
            # Comments (":"), "id:" and "retry:" carry nothing a chat completion needs.
        return events

    @property
    def pending(self) -> bool:
        """Whether part of an event arrived without the blank line that would end it."""
        return bool(self._rest or self._data)
