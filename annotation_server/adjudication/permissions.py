"""Permission checks of the adjudication app (querysets do the filtering)."""

from __future__ import annotations

from annotation_server.projects.permissions import MANAGE, has_project_perm


def can_manage(user, case) -> bool:
    """Settle again, reopen for re-arbitration: the project's managers."""
    return has_project_perm(user, case.project, MANAGE)
