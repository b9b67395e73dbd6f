"""python manage.py register_assist_model FOLDER

Registers a TorchScript plug-in (FOLDER holds model.pt and config.json, see
assist_models/torchscript.py): the config is validated, both files are copied
into the storage (assist-models/<sha256 of its files>/) and an
AssistModelVersion row records the model with its weights' sha256. Audited.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from annotation_server.reading import assist


class Command(BaseCommand):
    help = "Register a TorchScript assist model (a folder with model.pt and config.json)."

    def add_arguments(self, parser):
        parser.add_argument("folder")

    def handle(self, *args, folder, **options):
        from assist_models.torchscript import ConfigError

        try:
            row = assist.register_plugin(folder)
        except ConfigError as exc:
            raise CommandError(
                "config not usable: " + "; ".join(exc.problems), returncode=2
            ) from None
        except assist.AssistError as exc:
            raise CommandError(str(exc), returncode=2) from None
        self.stdout.write(
            f"registered {row.name} {row.version} (sha256 {row.weights_sha256}) as #{row.pk}"
        )
