"""Formatting of agreement estimates in templates."""

from __future__ import annotations

from django import template
from django.utils.html import format_html

register = template.Library()


@register.filter
def est(e, digits: int = 2):
    """{"value", "low", "high", "n"} as "0.71 (0.65–0.77)", or an em dash."""
    if not isinstance(e, dict) or e.get("value") is None:
        return "—"
    fmt = f"{{:.{int(digits)}f}}"
    value = fmt.format(e["value"])
    if e.get("low") is None or e.get("high") is None:
        return value
    return format_html(
        '{} <span class="muted small">({}–{})</span>',
        value,
        fmt.format(e["low"]),
        fmt.format(e["high"]),
    )


@register.filter
def reader_name(reader_id, names):
    return names.get(reader_id, reader_id) if isinstance(names, dict) else reader_id


@register.filter
def get(mapping, key):
    return mapping.get(key) if isinstance(mapping, dict) else None
