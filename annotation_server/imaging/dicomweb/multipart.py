"""multipart/related bodies (RFC 2387): written as a stream for WADO-RS, read as a
stream for STOW-RS (`read_parts`), and a small parser (for tests and clients)
that also accepts a transfer syntax inside the quoted `type` parameter, as
Orthanc's DICOMweb plugin writes it."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Iterator


def new_boundary() -> str:
    return "refset-" + secrets.token_hex(16)


def content_type(part_type: str, boundary: str, transfer_syntax: str | None = None) -> str:
    value = f'multipart/related; type="{part_type}"; boundary={boundary}'
    return value + (f"; transfer-syntax={transfer_syntax}" if transfer_syntax else "")


def iter_body(parts: Iterable[tuple[str, bytes]], boundary: str) -> Iterator[bytes]:
    """Yield the body chunk by chunk; `parts` are (part Content-Type, payload)."""
    marker = f"--{boundary}".encode()
    for part_type, payload in parts:
        yield marker + b"\r\nContent-Type: " + part_type.encode() + b"\r\n\r\n"
        yield payload
        yield b"\r\n"
    yield marker + b"--\r\n"


def _params(header_value: str) -> tuple[str, dict[str, str]]:
    """Media type and parameters; quoted values may hold ';' (Orthanc's form)."""
    items, current, quoted = [], "", False
    for char in header_value:
        if char == '"':
            quoted = not quoted
        if char == ";" and not quoted:
            items.append(current)
            current = ""
        else:
            current += char
    items.append(current)
    media_type = items[0].strip().lower()
    params: dict[str, str] = {}
    for item in items[1:]:
        name, _, value = item.partition("=")
        params[name.strip().lower()] = value.strip().strip('"')
    return media_type, params


def parse_media_type(header_value: str) -> tuple[str, dict[str, str]]:
    """('multipart/related', {'type': ..., 'boundary': ..., 'transfer-syntax': ...}).

    A transfer syntax inside the quoted type (`type="application/dicom;
    transfer-syntax=1.2.840.10008.1.2.1"`) is lifted out into the parameters."""
    media_type, params = _params(header_value)
    if ";" in params.get("type", ""):
        inner_type, inner = _params(params["type"])
        params["type"] = inner_type
        for key, value in inner.items():
            params.setdefault(key, value)
    return media_type, params


def parse(body: bytes, header_value: str) -> list[tuple[dict[str, str], bytes]]:
    """Split a multipart/related body into (part headers, payload) pairs."""
    media_type, params = parse_media_type(header_value)
    if media_type != "multipart/related" or "boundary" not in params:
        raise ValueError(f"not a multipart/related body: {header_value!r}")
    marker = b"--" + params["boundary"].encode()
    parts = []
    chunks = body.split(b"\r\n" + marker)
    first = chunks[0]
    chunks[0] = first[len(marker) :] if first.startswith(marker) else first
    for chunk in chunks:
        if chunk.startswith(b"--"):
            break
        head, _, payload = chunk.partition(b"\r\n\r\n")
        headers = {}
        for line in head.split(b"\r\n"):
            name, sep, value = line.decode("latin-1").partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        parts.append((headers, payload))
    return parts


# -- reading a body as a stream -------------------------------------------------------

READ_CHUNK = 256 * 1024
MAX_PART_HEADER_BYTES = 16 * 1024


class MultipartError(ValueError):
    pass


def read_parts(
    read: Callable[[int], bytes], header_value: str, *, chunk_size: int = READ_CHUNK
) -> Iterator[tuple[str, object]]:
    """Read a multipart/related body from `read` (a file's read: b"" at the end)
    without holding more than a chunk of it, as events: ("part", headers) when a
    part starts (header names lower-cased), ("data", bytes) for pieces of its
    payload, ("end", None) when it ends. Stops at the closing delimiter (the
    epilogue is not read). Raises MultipartError for a body that is not one."""
    media_type, params = parse_media_type(header_value or "")
    if media_type != "multipart/related" or not params.get("boundary"):
        raise MultipartError("Content-Type must be multipart/related with a boundary")
    delimiter = b"--" + params["boundary"].encode("latin-1")
    body_end = b"\r\n" + delimiter  # a payload ends with CRLF before the delimiter
    buf = b""
    eof = False

    def fill() -> bool:
        nonlocal buf, eof
        if eof:
            return False
        data = read(chunk_size)
        if not data:
            eof = True
            return False
        buf += data
        return True

    # preamble: up to the first delimiter
    while (at := buf.find(delimiter)) < 0:
        buf = buf[-len(delimiter) :]
        if not fill():
            raise MultipartError("no parts in the multipart body")
    buf = buf[at + len(delimiter) :]
    parts = 0
    while True:
        # after a delimiter: "--" closes the body, otherwise the rest of its line
        while len(buf) < 2 and fill():
            pass
        if buf.startswith(b"--"):
            if not parts:
                raise MultipartError("no parts in the multipart body")
            return
        while (eol := buf.find(b"\r\n")) < 0:
            if len(buf) > MAX_PART_HEADER_BYTES or not fill():
                raise MultipartError("the body ends inside a delimiter line")
        buf = buf[eol + 2 :]
        # the part's headers, up to an empty line
        while (at := buf.find(b"\r\n\r\n")) < 0 and not buf.startswith(b"\r\n"):
            if len(buf) > MAX_PART_HEADER_BYTES:
                raise MultipartError("a part's headers are too long")
            if not fill():
                raise MultipartError("a part has no header/body separator")
        if buf.startswith(b"\r\n"):
            head, buf = b"", buf[2:]
        else:
            head, buf = buf[:at], buf[at + 4 :]
        headers = {}
        for line in head.split(b"\r\n"):
            name, sep, value = line.decode("latin-1").partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        parts += 1
        yield "part", headers
        # the payload, up to CRLF + delimiter; hold back what may be its start
        while (at := buf.find(body_end)) < 0:
            keep = len(body_end) - 1
            if len(buf) > keep:
                yield "data", buf[:-keep]
                buf = buf[-keep:]
            if not fill():
                raise MultipartError("the body ends inside a part (no closing delimiter)")
        if at:
            yield "data", buf[:at]
        buf = buf[at + len(body_end) :]
        yield "end", None
