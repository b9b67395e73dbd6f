"""Job handlers of the web app (registry.JOB_HANDLERS)."""

from __future__ import annotations

from annotation_server.web import periodic


def run_periodic(ctx) -> dict:
    """periodic.run: one run of the periodic job named in params["name"]
    (overdue reminders, audit verification, cleanup; web/periodic.py)."""
    return periodic.run_job(ctx)
