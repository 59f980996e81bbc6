"""Receive one multipart upload straight to disk, with memory independent of file size.

Starlette's ``request.form()`` spools file parts to a temporary file and then the
handler copies it again; here python-multipart's push parser hands each piece of the
file part to a sink as it arrives from the socket, so the bytes are written (and
hashed) once, into the upload session's own folder. Text fields (``session_token``
and friends) are small and collected in memory with a size cap.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

MAX_FIELD_BYTES = 4096
MAX_FIELDS = 32
FILE_FIELDS = frozenset({"file", "fits_file"})


class MalformedUpload(Exception):
    """The request is not a usable multipart upload."""


class FileSink(Protocol):
    """Where the bytes of the file part go."""

    def write(self, data: bytes) -> None:
        """Take the next piece of the file."""


@dataclass
class ParsedUpload:
    """Text fields and, if a file part came, its client-side name."""

    fields: dict[str, str] = field(default_factory=dict)
    file_name: str | None = None
    file_seen: bool = False


OpenSink = Callable[[dict[str, str], str | None], Awaitable[FileSink]]


async def receive_upload(request: Request, open_sink: OpenSink) -> ParsedUpload:
    """Parse a ``multipart/form-data`` body, streaming its file part into a sink.

    ``open_sink(fields_so_far, file_name)`` is awaited when the file part starts, so
    fields sent before the file (``session_token``) are known by then. Errors raised by
    the sink or ``open_sink`` propagate; the caller drains or closes the connection.

    Raises
    ------
    MalformedUpload
        Wrong content type, no boundary, more than one file part, oversized fields,
        or no closing boundary.
    """
    content_type, params = parse_options_header(request.headers.get("content-type", ""))
    if content_type != b"multipart/form-data":
        raise MalformedUpload("send the file as multipart/form-data with a 'file' field")
    boundary = params.get(b"boundary")
    if not boundary:
        raise MalformedUpload("multipart body without a boundary")
    events = _PartEvents()
    parser = MultipartParser(boundary, events.callbacks())
    reader = _PartReader(open_sink)
    async for chunk in request.stream():
        try:
            parser.write(chunk)
        except Exception as exc:  # python-multipart raises its own parse errors
            raise MalformedUpload(f"malformed multipart body ({exc})") from exc
        for kind, data in events.take():
            await reader.handle(kind, data)
    parser.finalize()
    if not events.closed:
        # a body cut short (client gone, proxy limit) must not pass for a whole upload
        raise MalformedUpload("multipart body ends without its closing boundary")
    return reader.result


class _PartEvents:
    """python-multipart's callbacks, queued as ``(kind, data)`` events.

    The parser calls back synchronously, but opening the sink is awaited: the events
    of one chunk are queued here and handled once ``parser.write`` returns.
    """

    def __init__(self) -> None:
        self._events: list[tuple[str, bytes]] = []
        self._header_field = bytearray()
        self._header_value = bytearray()
        self.closed = False

    def callbacks(self) -> dict[str, Any]:
        """The parser's callback table."""
        return {
            "on_part_begin": lambda: self._events.append(("begin", b"")),
            "on_header_field": self._on_header_field,
            "on_header_value": self._on_header_value,
            "on_header_end": self._on_header_end,
            "on_headers_finished": lambda: self._events.append(("headers_done", b"")),
            "on_part_data": self._on_part_data,
            "on_part_end": lambda: self._events.append(("end", b"")),
            "on_end": self._on_end,
        }

    def take(self) -> list[tuple[str, bytes]]:
        """The events queued since the last call."""
        events, self._events = self._events, []
        return events

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_field.extend(data[start:end])

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value.extend(data[start:end])

    def _on_header_end(self) -> None:
        header = bytes(self._header_field).lower() + b"\x00" + bytes(self._header_value)
        self._events.append(("header", header))
        self._header_field.clear()
        self._header_value.clear()

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        self._events.append(("data", data[start:end]))

    def _on_end(self) -> None:
        self.closed = True


class _PartReader:
    """The state of the part being read: a capped text field, or the one file part."""

    def __init__(self, open_sink: OpenSink) -> None:
        self._open_sink = open_sink
        self.result = ParsedUpload()
        self._name: str | None = None
        self._filename: str | None = None
        self._value = bytearray()
        self._sink: FileSink | None = None

    async def handle(self, kind: str, data: bytes) -> None:
        """Take one parser event."""
        if kind == "begin":
            self._name, self._filename, self._sink = None, None, None
            self._value.clear()
        elif kind == "header":
            self._read_header(data)
        elif kind == "headers_done":
            await self._start_part()
        elif kind == "data":
            self._take_data(data)
        elif kind == "end" and self._sink is None and self._name:
            self.result.fields[self._name] = self._value.decode("utf-8", "replace")

    def _read_header(self, data: bytes) -> None:
        key, _, raw = data.partition(b"\x00")
        if key == b"content-disposition":
            _, disposition = parse_options_header(raw)
            self._name = disposition.get(b"name", b"").decode("utf-8", "replace")
            if b"filename" in disposition:
                self._filename = disposition[b"filename"].decode("utf-8", "replace")

    async def _start_part(self) -> None:
        result, name = self.result, self._name
        if name in FILE_FIELDS or (self._filename is not None and name not in result.fields):
            if result.file_seen:
                raise MalformedUpload("send one file per request")
            result.file_seen = True
            result.file_name = self._filename
            self._sink = await self._open_sink(result.fields, self._filename)
        elif len(result.fields) >= MAX_FIELDS:
            raise MalformedUpload(f"more than {MAX_FIELDS} form fields")

    def _take_data(self, data: bytes) -> None:
        if self._sink is not None:
            self._sink.write(data)
            return
        self._value.extend(data)
        if len(self._value) > MAX_FIELD_BYTES:
            raise MalformedUpload(f"form field {self._name!r} is too long")
