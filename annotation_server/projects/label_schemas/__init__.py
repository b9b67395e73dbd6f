"""The label schemas RefSet ships, as data (JSON files beside this module)."""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent


def shipped() -> list[dict]:
    """Every shipped schema: {"key", "version", "name", "definition"}."""
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(HERE.glob("*.json"))]
