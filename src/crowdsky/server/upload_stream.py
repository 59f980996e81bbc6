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
from typing import Protocol

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

    result = ParsedUpload()
    events: list[tuple[str, bytes]] = []
    header_field = bytearray()
    header_value = bytearray()

    def on_part_begin() -> None:
        events.append(("begin", b""))

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header_field.extend(data[start:end])

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header_value.extend(data[start:end])

    def on_header_end() -> None:
        events.append(("header", bytes(header_field).lower() + b"\x00" + bytes(header_value)))
        header_field.clear()
        header_value.clear()

    def on_headers_finished() -> None:
        events.append(("headers_done", b""))

    def on_part_data(data: bytes, start: int, end: int) -> None:
        events.append(("data", data[start:end]))

    def on_part_end() -> None:
        events.append(("end", b""))

    closed = False

    def on_end() -> None:
        nonlocal closed
        closed = True

    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": on_part_begin,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
            "on_end": on_end,
        },
    )
    name: str | None = None
    filename: str | None = None
    value = bytearray()
    sink: FileSink | None = None
    in_file = False
    async for chunk in request.stream():
        try:
            parser.write(chunk)
        except Exception as exc:  # python-multipart raises its own parse errors
            raise MalformedUpload(f"malformed multipart body ({exc})") from exc
        for kind, data in events:
            if kind == "begin":
                name, filename, in_file = None, None, False
                value.clear()
            elif kind == "header":
                key, _, raw = data.partition(b"\x00")
                if key == b"content-disposition":
                    _, disposition = parse_options_header(raw)
                    name = disposition.get(b"name", b"").decode("utf-8", "replace")
                    if b"filename" in disposition:
                        filename = disposition[b"filename"].decode("utf-8", "replace")
            elif kind == "headers_done":
                if name in FILE_FIELDS or (filename is not None and name not in result.fields):
                    if result.file_seen:
                        raise MalformedUpload("send one file per request")
                    result.file_seen = True
                    result.file_name = filename
                    in_file = True
                    sink = await open_sink(result.fields, filename)
                elif len(result.fields) >= MAX_FIELDS:
                    raise MalformedUpload(f"more than {MAX_FIELDS} form fields")
            elif kind == "data":
                if in_file:
                    assert sink is not None
                    sink.write(data)
                else:
                    value.extend(data)
                    if len(value) > MAX_FIELD_BYTES:
                        raise MalformedUpload(f"form field {name!r} is too long")
            elif kind == "end" and not in_file and name:
                result.fields[name] = value.decode("utf-8", "replace")
        events.clear()
    parser.finalize()
    if not closed:
        # a body cut short (client gone, proxy limit) must not pass for a whole upload
        raise MalformedUpload("multipart body ends without its closing boundary")
    return result
