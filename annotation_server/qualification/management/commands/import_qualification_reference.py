"""manage.py import_qualification_reference PROJECT FILE.json [--user NAME]

Give qualification cases their reference from a JSON file:

    {"cases": {"Q001": [{"finding_type": "nodule",
                         "geometry": {"kind": "ellipse", "shapes": [...], "centre_mm": [x, y, z]},
                         "attributes": {"nodule_type": "solid", "malignancy": 3}}],
               "Q002": []}}

Each listed case's reference is replaced (an empty list makes it a normal case).
All or nothing: one invalid finding and nothing is imported. Audited.
"""

from __future__ import annotations

import json
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.core.management.base import BaseCommand, CommandError

from annotation_server.projects.models import Project
from annotation_server.projects.schema import SchemaError
from annotation_server.qualification import services as q


class Command(BaseCommand):
    help = "Import the reference of qualification cases from a JSON file."

    def add_arguments(self, parser):
        parser.add_argument("project", help="project slug")
        parser.add_argument("file", type=Path, help="JSON file")
        parser.add_argument(
            "--user", help="the dataset manager importing it (recorded in the audit log)"
        )

    def handle(self, *args, project: str, file: Path, user: str | None = None, **options):
        found = Project.objects.filter(slug=project).first()
        if found is None:
            raise CommandError(f"No project {project!r}.")
        by = None
        if user:
            by = get_user_model().objects.filter(username=user).first()
            if by is None:
                raise CommandError(f"No user {user!r}.")
        try:
            payload = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise CommandError(f"Cannot read {file}: {exc}") from None
        try:
            n = q.import_reference_payload(found, payload, by=by, source=file.name)
        except q.QualificationError as exc:
            raise CommandError(str(exc)) from None
        except SchemaError as exc:
            raise CommandError("\n".join(exc.errors)) from None
        except PermissionDenied as exc:
            raise CommandError(str(exc)) from None
        cases = len(payload["cases"])
        self.stdout.write(f"{n} reference findings imported on {cases} cases of {found.slug}.")
