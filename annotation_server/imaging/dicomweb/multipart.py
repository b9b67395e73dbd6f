"""multipart/related bodies for WADO-RS (RFC 2387), written as a stream, and a small
parser (for tests and clients) that also accepts a transfer syntax inside the
quoted `type` parameter, as Orthanc's DICOMweb plugin writes it."""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Iterator


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
