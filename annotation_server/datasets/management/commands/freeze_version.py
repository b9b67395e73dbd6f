"""Draft and freeze a dataset version in one step.

    python manage.py freeze_version --project SLUG --version X.Y.Z \
        (--cases FILE | --all-adjudicated) [--parent X.Y.Z] [--retire-reason TEXT]
        [--seed N] [--ratios 0.7,0.15,0.15] [--title TEXT] [--by USERNAME]

--cases FILE: one case id per line (blank lines and lines starting with # are
skipped; "-" reads standard input). Parent cases left out are retired with
--retire-reason (required when there are any). The freeze is audited as the
user --by (a manager of the project; default: the first superuser).
"""

from __future__ import annotations

import sys

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.core.management.base import BaseCommand, CommandError

from annotation_server.datasets import services
from annotation_server.datasets.models import DatasetVersion
from annotation_server.errors import DomainError
from annotation_server.projects.models import Project


class Command(BaseCommand):
    help = "Freeze a dataset version of a project's adjudicated cases."

    def add_base_argument(self, parser, *args, **kwargs):
        # --version names the dataset version here, not Django's version
        if "--version" in args:
            return
        super().add_base_argument(parser, *args, **kwargs)

    def add_arguments(self, parser):
        parser.add_argument("--project", required=True)
        parser.add_argument("--version", dest="version_name", required=True)
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument("--cases", help="file of case ids, one per line ('-': stdin)")
        which.add_argument("--all-adjudicated", action="store_true")
        parser.add_argument("--parent", help="the frozen version this one corrects")
        parser.add_argument("--retire-reason", default="")
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument("--ratios", default="0.7,0.15,0.15", help="train,validation,test")
        parser.add_argument("--title", default="")
        parser.add_argument("--by", help="username of the manager who freezes")

    def handle(self, *args, **opts):
        project = Project.objects.filter(slug=opts["project"]).first()
        if project is None:
            raise CommandError(f"no project {opts['project']!r}")
        user = self._user(opts["by"])
        parent = None
        if opts["parent"]:
            parent = DatasetVersion.objects.filter(project=project, version=opts["parent"]).first()
            if parent is None:
                raise CommandError(f"no version {opts['parent']} of {project.slug}")
        codes = None
        if opts["cases"]:
            if opts["cases"] == "-":
                lines = sys.stdin.read().splitlines()
            else:
                try:
                    with open(opts["cases"], encoding="utf-8") as stream:
                        lines = stream.read().splitlines()
                except OSError as exc:
                    raise CommandError(f"--cases: {exc}") from None
            codes = [x.strip() for x in lines if x.strip() and not x.lstrip().startswith("#")]
        try:
            parts = [float(x) for x in opts["ratios"].split(",")]
            ratios = dict(zip(("train", "validation", "test"), parts, strict=True))
        except ValueError as exc:
            raise CommandError(f"--ratios: {exc}") from None
        try:
            draft = services.create_draft(
                project,
                version=opts["version_name"],
                by=user,
                parent=parent,
                title=opts["title"],
                all_adjudicated=opts["all_adjudicated"],
                codes=codes,
                seed=opts["seed"],
                ratios=ratios,
                retire_reason=opts["retire_reason"],
            )
            version = services.freeze(draft, by=user)
        except (DomainError, PermissionDenied) as exc:
            raise CommandError(str(getattr(exc, "message", exc))) from None
        summary = services.split_summary(version, show_sequestered=True)
        self.stdout.write(
            self.style.SUCCESS(
                f"froze {project.slug} v{version.version}: "
                + ", ".join(f"{s['split']} {s['cases']}" for s in summary)
                + f"; retired {version.cases.filter(retired=True).count()}"
                + f"; content sha256 {version.content_sha256}"
            )
        )

    def _user(self, username):
        User = get_user_model()
        if username:
            user = User.objects.filter(username=username).first()
            if user is None:
                raise CommandError(f"no user {username!r}")
            return user
        user = User.objects.filter(is_superuser=True, is_active=True).order_by("pk").first()
        if user is None:
            raise CommandError("no superuser: pass --by USERNAME")
        return user
