"""How a read's author is shown to a given viewer.

Managers (and admins) see pseudonymous reader ids in data (API, exports), and on
their pages the reader's real name and profile next to the pseudonym
(`reader_identity`): they recruited these people and must be able to reach
them. Everyone else sees "me" for their own reads and R1..RN for others,
numbered by the order the case's tasks were assigned, so the same reader keeps
the same label across a case's views. Exports never carry names: they go
through pseudonyms only.
"""

from __future__ import annotations

from annotation_server.projects.permissions import MANAGE, has_project_perm


def pseudonym_of(user) -> str:
    profile = getattr(user, "profile", None)
    return profile.pseudonym if profile else f"user-{user.pk}"


def reader_identity(user) -> dict:
    """A reader as their manager sees them: pseudonym, real name and profile."""
    profile = getattr(user, "profile", None)
    name = (user.get_full_name() or "").strip() or user.get_username()
    return {
        "pseudonym": pseudonym_of(user),
        "name": name,
        "username": user.get_username(),
        "email": user.email,
        "title": profile.get_title_display() if profile and profile.title else "",
        "specialty": profile.specialty if profile else "",
        "years": profile.years_experience if profile else None,
        "site": str(profile.site) if profile and profile.site_id else "",
    }


class ReaderLabeller:
    def __init__(self, viewer):
        self.viewer = viewer
        self._manager: dict[int, bool] = {}
        self._numbers: dict[int, dict[int, int]] = {}

    def sees_identities(self, project) -> bool:
        if project.pk not in self._manager:
            self._manager[project.pk] = has_project_perm(self.viewer, project, MANAGE)
        return self._manager[project.pk]

    def _number(self, task) -> int:
        from annotation_server.reading.models import ReadingTask

        numbers = self._numbers.get(task.case_id)
        if numbers is None:
            readers = (
                ReadingTask.objects.operational()
                .filter(case_id=task.case_id)
                .order_by("id")
                .values_list("reader_id", flat=True)
            )
            numbers = {}
            for reader_id in readers:
                numbers.setdefault(reader_id, len(numbers) + 1)
            self._numbers[task.case_id] = numbers
        return numbers.get(task.reader_id, 0)

    def label(self, task) -> str:
        if task.reader_id == self.viewer.pk:
            return "me"
        if self.viewer.is_superuser or self.sees_identities(task.case.project):
            return pseudonym_of(task.reader)
        return f"R{self._number(task)}"

    def identity(self, task) -> dict | None:
        """The reader's name and profile, for a manager's page only (None otherwise)."""
        if task.reader_id != self.viewer.pk and (
            self.viewer.is_superuser or self.sees_identities(task.case.project)
        ):
            return reader_identity(task.reader)
        return None

    def shows_timings(self, task) -> bool:
        return (
            task.reader_id == self.viewer.pk
            or self.viewer.is_superuser
            or self.sees_identities(task.case.project)
        )
