"""python manage.py backfill_instance_views [--project SLUG] [--batch N] [--dry-run]

Fills the view position (and an empty laterality) of every image imported before
the import recorded it, from the start of its stored file (no pixels), the way
the import reads them (imaging/backfill.py); sets source_format DICOM where the
row's SOP class shows the image cannot have been a photograph (any class but
Ophthalmic Photography 8 Bit). Images of frozen dataset versions are left as
they are, and counted. Safe to run again, and while imports run.
Prints each unreadable file (by instance id) on stderr, then the counts.
Exit status: 0 when every file was read, 1 when some could not be, 2 on a usage
error.
"""

from __future__ import annotations

import sys

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from annotation_server.imaging.backfill import DEFAULT_BATCH, backfill_views
from annotation_server.imaging.management.console import printable
from annotation_server.projects.models import Project


class UsageError(CommandError):
    def __init__(self, message: str):
        super().__init__(message, returncode=2)


def positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise UsageError(
            _("--batch must be a whole number of at least 1, not %(value)r") % {"value": text}
        )
    return value


class Command(BaseCommand):
    help = gettext_lazy(
        "Fill the view position and an empty laterality of images imported before they "
        "were recorded, from their stored DICOM headers (read without the pixels). "
        "source_format is set to DICOM only where the row's SOP class shows the image "
        "arrived as DICOM (any class but Ophthalmic Photography 8 Bit, the one the "
        "photograph import writes); for an Ophthalmic Photography image imported before "
        "source formats were recorded the row cannot tell a DICOM file from a converted "
        "JPEG/PNG/TIFF, so its source_format is left empty. Images of frozen dataset "
        "versions are left as they are (frozen means read-only) and counted."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--project", metavar="SLUG", help=gettext_lazy("only this project's images")
        )
        parser.add_argument(
            "--batch",
            type=str,
            default=str(DEFAULT_BATCH),
            metavar="N",
            help=gettext_lazy("rows read and written at a time (default %(default)s)"),
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help=gettext_lazy("read and count, write nothing"),
        )

    def handle(self, *args, project, batch, dry_run, **options):
        size = positive(batch)
        project_id = None
        if project:
            project_id = Project.objects.filter(slug=project).values_list("pk", flat=True).first()
            if project_id is None:
                raise UsageError(_("No project with slug %(slug)r.") % {"slug": project})

        def unreadable(instance_id: int, key: str, why: str) -> None:
            self.stderr.write(
                _("instance %(id)s: cannot read %(key)s: %(why)s")
                % {"id": instance_id, "key": printable(key), "why": printable(why)}
            )

        report = backfill_views(
            project_id=project_id, batch=size, dry_run=dry_run, on_unreadable=unreadable
        )
        counts = {
            "examined": report.examined,
            "filled": report.filled,
            "unreadable": len(report.unreadable),
            "formats": report.source_formats,
            "frozen": report.frozen,
        }
        if dry_run:
            line = _(
                "Dry run, nothing written: examined %(examined)d, would fill %(filled)d "
                "(source format DICOM: %(formats)d), unreadable %(unreadable)d; in frozen "
                "dataset versions, left as they are: %(frozen)d."
            )
        else:
            line = _(
                "Examined %(examined)d, filled %(filled)d (source format DICOM: %(formats)d), "
                "unreadable %(unreadable)d; in frozen dataset versions, left as they are: "
                "%(frozen)d."
            )
        self.stdout.write(line % counts)
        if report.unreadable:
            sys.exit(1)
