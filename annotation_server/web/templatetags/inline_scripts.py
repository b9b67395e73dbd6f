"""{% inline_script "refset/viewer/prefetch.js" %}: a static script put inline in
the page, which the Content-Security-Policy allows by the sha256 of its text
(annotation_server/csp.py, settings.CSP_INLINE_SCRIPTS)."""

from __future__ import annotations

from django import template
from django.utils.safestring import mark_safe

from annotation_server import csp

register = template.Library()


@register.simple_tag
def inline_script(path: str) -> str:
    text, _ = csp.inline_script(path)
    return mark_safe(f"<script>{text}</script>")  # a checked static file, not user input
