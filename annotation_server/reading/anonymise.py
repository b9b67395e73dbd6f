"""How a read's author is shown to a given viewer.

Managers (and admins) see pseudonymous reader ids. Everyone else sees "me" for
their own reads and R1..RN for others, numbered by the order the case's tasks
were assigned, so the same reader keeps the same label across a case's views.
"""

from __future__ import annotations

from annotation_server.projects.permissions import MANAGE, has_project_perm


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
            profile = getattr(task.reader, "profile", None)
            return profile.pseudonym if profile else f"user-{task.reader_id}"
        return f"R{self._number(task)}"

    def shows_timings(self, task) -> bool:
        return (
            task.reader_id == self.viewer.pk
            or self.viewer.is_superuser
            or self.sees_identities(task.case.project)
        )
