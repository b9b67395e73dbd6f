"""The static modules' translatable strings as Django's JavaScript catalogue
shows them: its interpolate() replaces %s and %(name)s and nothing else, so a
"%%" in a msgid reaches the screen doubled ("contrast 100%%" once did). A percent
sign goes in with the value it belongs to instead."""

from __future__ import annotations

import re
from pathlib import Path

STATIC = Path(__file__).resolve().parents[2] / "frontend_templates/static/refset"
LITERAL = r"""(["'])((?:\\.|(?!\1).)*)\1"""
CALLS = re.compile(rf"""\b(?:gettext|ngettext)\(\s*{LITERAL}(?:\s*,\s*{LITERAL})?""")


def _msgids():
    for module in sorted(STATIC.rglob("*.js")):
        for match in CALLS.finditer(module.read_text(encoding="utf-8")):
            for text in (match.group(2), match.group(4)):
                if text is not None:
                    yield module.relative_to(STATIC), text


def test_the_scan_finds_the_viewer_strings():
    found = {text for _, text in _msgids()}
    assert "%s slice loaded" in found and "%s slices loaded" in found  # ngettext, both forms
    assert "Brightness %s · contrast %s" in found


def test_no_javascript_string_holds_a_doubled_percent():
    doubled = [f"{module}: {text}" for module, text in _msgids() if "%%" in text]
    assert not doubled, "Django's interpolate() shows %% as it is: " + "; ".join(doubled)
