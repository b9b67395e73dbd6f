"""Run the project-level hooks (annotation_server.registry.HOOKS) by name.

A lower app calls `run("reading.submitted", task, actor)`; the functions listed
for that name, in higher apps, are imported only when the hook fires, so the
lower app never imports them.
"""

from __future__ import annotations

from functools import cache

from django.utils.module_loading import import_string

from annotation_server import registry


@cache
def _functions(name: str) -> tuple:
    return tuple(import_string(path) for path in registry.HOOKS[name])


def run(name: str, *args, **kwargs) -> None:
    if name not in registry.HOOKS:
        raise ValueError(f"Unknown hook {name!r}; known: {', '.join(sorted(registry.HOOKS))}")
    for function in _functions(name):
        function(*args, **kwargs)
