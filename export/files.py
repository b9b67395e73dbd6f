"""Writing package files the same way every time.

Every writer goes through `PackageDir`: text is UTF-8 with LF line ends, JSON
has sorted keys and a fixed indent, CSV goes through export.tables.csv_writer
(formula cells neutralised) with LF line ends and floats in a fixed notation,
and file times are set to the version's freeze time. Two exports of one
version are therefore byte-identical.
"""

from __future__ import annotations

import io
import json
import math
import os
import shutil
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from export.tables import csv_writer


def epoch(iso: str) -> float:
    """Seconds since 1970 for an ISO time; the freeze time fixes every mtime."""
    when = datetime.fromisoformat(iso.replace("Z", "+00:00")) if iso else None
    if when is None:
        return 315532800.0  # 1980-01-01, the earliest a zip can store
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(when.timestamp(), 315532800.0)


def cell(value: Any) -> Any:
    """A table cell: floats rounded to 6 decimals, None empty, lists joined."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if not math.isfinite(value):
            return ""
        text = f"{value:.6f}".rstrip("0").rstrip(".")
        return "0" if text in ("-0", "") else text
    if isinstance(value, list | tuple):
        return ";".join(str(cell(v)) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    return value


def dumps(data: Any) -> str:
    return json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


class PackageDir:
    """A directory being filled with package files (relative POSIX paths)."""

    def __init__(self, root: Path, mtime: float):
        self.root = Path(root)
        self.mtime = mtime
        self.written: list[str] = []

    def path(self, rel: str) -> Path:
        target = self.root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def _done(self, rel: str) -> None:
        os.utime(self.root / rel, (self.mtime, self.mtime))
        self.written.append(rel)

    def write_bytes(self, rel: str, data: bytes) -> None:
        self.path(rel).write_bytes(data)
        self._done(rel)

    def write_text(self, rel: str, text: str) -> None:
        self.write_bytes(rel, text.replace("\r\n", "\n").encode("utf-8"))

    def write_json(self, rel: str, data: Any) -> None:
        self.write_text(rel, dumps(data))

    def write_csv(
        self, rel: str, header: Sequence[str], rows: Iterable[Sequence[Any]], bom: bool = True
    ) -> None:
        """With a UTF-8 BOM (Excel on Chinese Windows) unless a format's tools want none."""
        buf = io.StringIO()
        writer = csv_writer(buf, bom=bom, lineterminator="\n")
        writer.writerow(header)
        for row in rows:
            writer.writerow([cell(v) for v in row])
        self.write_text(rel, buf.getvalue())

    def copy_file(self, rel: str, source: str | Path) -> None:
        with open(source, "rb") as src, open(self.path(rel), "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        self._done(rel)

    def save_dataset(self, rel: str, dataset) -> None:
        """A pydicom Dataset (highdicom objects are Datasets) written little-endian."""
        buf = io.BytesIO()
        dataset.save_as(buf, enforce_file_format=True)
        self.write_bytes(rel, buf.getvalue())
