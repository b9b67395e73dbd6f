"""Run the project-level hooks (annotation_server.registry.HOOKS) by name.

A lower app calls `run("reading.submitted", task, actor)`; the functions listed
for that name, in higher apps, are imported only when the hook fires, so the
lower app never imports them. `collect` does the same for a hook that answers
a question (the lower app asks, a higher one that owns the answer replies): it
returns what each function returned, in order.
"""

from __future__ import annotations

from functools import cache

from django.utils.module_loading import import_string

from annotation_server import registry


@cache
def _functions(name: str) -> tuple:
    return tuple(import_string(path) for path in registry.HOOKS[name])


def _known(name: str) -> None:
    if name not in registry.HOOKS:
        raise ValueError(f"Unknown hook {name!r}; known: {', '.join(sorted(registry.HOOKS))}")


def run(name: str, *args, **kwargs) -> None:
    _known(name)
    for function in _functions(name):
        function(*args, **kwargs)


def collect(name: str, *args, **kwargs) -> list:
    """Call the hook's functions and return their answers, in order."""
    _known(name)
    return [function(*args, **kwargs) for function in _functions(name)]
