"""python manage.py prelabel --project SLUG --model NAME [--version V] [--cases FILE]
[--threshold T]

Queues a `reading.prelabel` job: the assist model runs over the project's cases
(or those listed in FILE, one case code or id a line) on the inference queue and
stores its proposals. Without --version: the promoted version, else a
built-in model's committed weights, else the newest registered.
"""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from annotation_server.jobs.services import queue_for
from annotation_server.projects.models import Case, Project
from annotation_server.reading import assist


def case_ids_from(project: Project, path: str) -> list[int]:
    wanted = [
        line.strip()
        for line in Path(path).read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    cases = Case.objects.filter(project=project)
    by_code = dict(cases.values_list("code", "pk"))
    ids = set(cases.values_list("pk", flat=True))
    out, unknown = [], []
    for item in wanted:
        if item in by_code:
            out.append(by_code[item])
        elif item.isdigit() and int(item) in ids:
            out.append(int(item))
        else:
            unknown.append(item)
    if unknown:
        raise CommandError(f"not cases of {project.slug}: {', '.join(unknown[:10])}", returncode=2)
    return out


class Command(BaseCommand):
    help = "Run an assist model over a project's cases (a background job on the inference queue)."

    def create_parser(self, prog_name, subcommand, **kwargs):
        # --version names the model version here, not Django's own version.
        return super().create_parser(prog_name, subcommand, conflict_handler="resolve", **kwargs)

    def add_arguments(self, parser):
        parser.add_argument("--project", required=True, help="project slug")
        parser.add_argument("--model", required=True, help="assist model name")
        parser.add_argument("--version", dest="model_version", default=None, help="model version")
        parser.add_argument("--cases", default=None, help="file: one case code or id a line")
        parser.add_argument("--threshold", type=float, default=None, help="0-1")

    def handle(self, *args, project, model, model_version, cases, threshold, **options):
        try:
            project_obj = Project.objects.get(slug=project)
        except Project.DoesNotExist:
            raise CommandError(f"no project with slug {project!r}", returncode=2) from None
        case_ids = case_ids_from(project_obj, cases) if cases else None
        try:
            with transaction.atomic():
                row = assist.resolve_version(model, model_version)
                job = assist.queue_prelabel(
                    project_obj, row, case_ids=case_ids, threshold=threshold
                )
        except assist.AssistError as exc:
            raise CommandError(str(exc), returncode=2) from None
        queue = queue_for("reading.prelabel") or "the default queue"
        self.stdout.write(
            f"job {job.pk}: {row.name} {row.version} over "
            f"{len(case_ids) if case_ids else 'every'} case(s) of {project_obj.slug}, on {queue}"
        )
