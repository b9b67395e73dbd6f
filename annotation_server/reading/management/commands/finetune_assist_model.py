"""python manage.py finetune_assist_model --project SLUG --model NAME [--epochs N]
[--seed S] [--held-out F]

Queues a `reading.finetune` job on the inference queue: the model is fine-tuned
from the version that runs by default now on the project's adjudicated cases,
compared with it on the held-out ones (seeded split) and registered as a new
version. Nothing is promoted: a manager promotes it from the project's
assist-model page or the API once the comparison says so.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from annotation_server.jobs.services import queue_for
from annotation_server.projects.models import Project
from annotation_server.reading import assist, finetune
from annotation_server.reading.models import AssistModelVersion


class Command(BaseCommand):
    help = "Fine-tune an assist model on a project's adjudicated cases (a background job)."

    def add_arguments(self, parser):
        parser.add_argument("--project", required=True, help="project slug")
        parser.add_argument("--model", required=True, choices=sorted(finetune.FINETUNABLE))
        parser.add_argument("--epochs", type=int, default=finetune.DEFAULT_EPOCHS)
        parser.add_argument("--seed", type=int, default=finetune.SPLIT_SEED, help="split seed")
        parser.add_argument(
            "--held-out",
            dest="fraction",
            type=float,
            default=finetune.HOLDOUT_FRACTION,
            help="fraction of the adjudicated cases held out for the comparison",
        )

    def handle(self, *args, project, model, epochs, seed, fraction, **options):
        try:
            project_obj = Project.objects.get(slug=project)
        except Project.DoesNotExist:
            raise CommandError(f"no project with slug {project!r}", returncode=2) from None
        try:
            with transaction.atomic():
                job = finetune.queue_finetune(
                    project_obj, model, epochs=epochs, seed=seed, fraction=fraction
                )
        except assist.AssistError as exc:
            raise CommandError(str(exc), returncode=2) from None
        queue = queue_for(finetune.KIND) or "the default queue"
        parent = AssistModelVersion.objects.get(pk=job.params["parent_id"])
        self.stdout.write(
            f"job {job.pk}: fine-tune {model} {parent.version} into {job.params['version']} "
            f"on the adjudicated cases of {project_obj.slug}, {epochs} epochs, on {queue}"
        )
