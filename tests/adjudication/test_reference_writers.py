"""The reference standard is written in one module: adjudication/services/reference.py."""

from __future__ import annotations

import re
from pathlib import Path

import annotation_server

WRITES = re.compile(
    r"(?<!class )Reference(Finding|Labels)\("  # a new row
    r"|Reference(Finding|Labels)\.objects\.(create|bulk_create|update|get_or_create|update_or_create)\("
    r"|Reference(Finding|Labels)\.objects\.[^\n]*\.(update|delete)\("
)


def test_only_the_reference_module_writes_the_reference_standard():
    root = Path(annotation_server.__file__).parent
    writers = sorted(
        str(path.relative_to(root))
        for path in root.rglob("*.py")
        if "migrations" not in path.parts and WRITES.search(path.read_text(encoding="utf-8"))
    )
    assert writers == ["adjudication/services/reference.py"]
