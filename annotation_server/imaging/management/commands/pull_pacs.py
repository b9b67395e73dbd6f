"""python manage.py pull_pacs --project SLUG --url URL [--user U --password P | --token T]
                             [--study-uid UID ...] [--query KEY=VALUE ...] [--site CODE]
   python manage.py pull_pacs --project SLUG --dimse --ae-title AET --host H --port N
                             [--retrieve move|get] [--study-uid UID ...] [--query KEY=VALUE ...]

With --query and no --study-uid: lists the matching studies on the PACS (QIDO-RS,
or C-FIND with --dimse) and exits. With --study-uid: retrieves each study (WADO-RS;
with --dimse C-MOVE to RefSet's own listener, which must be running and known to
the PACS, or C-GET), imports it de-identified and prints the same summary as
import_dicom. With --dimse, RefSet calls as its listener's AE title
(REFSET_DICOM_AE_TITLE).
Exit status: 0 when nothing was rejected, 1 when some files were, 2 on a usage
error or when the PACS cannot be reached (the message names the URL).
"""

from __future__ import annotations

import sys
import time

from django.core.management.base import BaseCommand

from annotation_server.accounts.models import Site
from annotation_server.imaging.management.commands.import_dicom import UsageError
from annotation_server.imaging.management.console import print_report, progress_bar
from annotation_server.imaging.pacs import PacsClient, PacsError, pull
from annotation_server.projects.models import Project


class Command(BaseCommand):
    help = (
        "Search a PACS over DICOMweb or DIMSE, or pull studies from it into a project "
        "(de-identified)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--project", required=True, help="project slug")
        parser.add_argument("--url", help="DICOMweb base URL of the PACS")
        parser.add_argument(
            "--dimse", action="store_true", help="talk DIMSE (C-FIND, C-MOVE/C-GET), not DICOMweb"
        )
        parser.add_argument("--ae-title", help="with --dimse: the PACS's AE title")
        parser.add_argument("--host", help="with --dimse: the PACS's host")
        parser.add_argument("--port", type=int, help="with --dimse: the PACS's DICOM port")
        parser.add_argument(
            "--retrieve",
            choices=["move", "get"],
            default="move",
            help="with --dimse: C-MOVE to RefSet's listener (default) or C-GET",
        )
        parser.add_argument("--user", help="HTTP basic user name")
        parser.add_argument("--password", help="HTTP basic password")
        parser.add_argument("--token", help="bearer token (instead of --user/--password)")
        parser.add_argument(
            "--study-uid", action="append", default=[], dest="study_uids", metavar="UID"
        )
        parser.add_argument(
            "--query",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="QIDO-RS filter, e.g. PatientID=ZY123 or StudyDate=20240101-20240131",
        )
        parser.add_argument("--site", help="site code of the delivering institution")
        parser.add_argument("--quiet", action="store_true", help="no progress bar")

    def create_parser(self, prog_name, subcommand, **kwargs):
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.error = lambda message: self._usage(parser, message)
        return parser

    def _usage(self, parser, message):
        parser.print_usage(sys.stderr)
        sys.stderr.write(f"error: {message}\n")
        sys.exit(2)

    def handle(self, *args, project, url, user, password, token, study_uids, query, **options):
        try:
            project_obj = Project.objects.get(slug=project)
        except Project.DoesNotExist:
            raise UsageError(f"no project with slug {project!r}") from None
        site_obj = None
        if options.get("site"):
            site_obj = Site.objects.filter(code=options["site"]).first()
            if site_obj is None:
                raise UsageError(f"no site with code {options['site']!r}")
        if token and (user or password):
            raise UsageError("give either --token or --user/--password, not both")
        if bool(user) != bool(password):
            raise UsageError("--user and --password go together")
        filters = {}
        for item in query:
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                raise UsageError(f"--query expects KEY=VALUE, got {item!r}")
            filters[key.strip()] = value.strip()
        if not study_uids and not filters:
            raise UsageError("give --study-uid UID (to pull) or --query KEY=VALUE (to search)")
        if options.get("dimse"):
            self._dimse(project_obj, site_obj, study_uids, filters, options)
            return
        if not url:
            raise UsageError("give --url (DICOMweb) or --dimse with --ae-title/--host/--port")
        auth = ("bearer", token) if token else ("basic", user, password) if user else None
        try:
            client = PacsClient(url, auth)
        except PacsError as exc:
            raise UsageError(str(exc)) from None
        try:
            if not study_uids:
                self._list(client, filters)
                return
            self._pull(project_obj, client, study_uids, site_obj, options.get("quiet", False))
        except PacsError as exc:
            raise UsageError(str(exc)) from None

    def _dimse(self, project, site, study_uids, filters, options) -> None:
        from annotation_server.imaging.dimse.scu import DimseClient
        from annotation_server.imaging.dimse.scu import pull as dimse_pull

        missing = [
            f"--{k.replace('_', '-')}" for k in ("ae_title", "host", "port") if not options.get(k)
        ]
        if missing:
            raise UsageError(f"--dimse needs {', '.join(missing)}")
        client = DimseClient(options["ae_title"], options["host"], options["port"])
        try:
            if not study_uids:
                self._list(client, filters)
                return
            started = time.monotonic()
            show = not options.get("quiet") and self.stdout.isatty()
            report = dimse_pull(
                project, client, study_uids, retrieve=options["retrieve"], site=site,
                progress=progress_bar(self, show),
            )  # fmt: skip
        except PacsError as exc:
            raise UsageError(str(exc)) from None
        if show:
            self.stdout.write("")
        print_report(self, report, time.monotonic() - started, where=self._where(study_uids))
        if not report.ok:
            sys.exit(1)

    @staticmethod
    def _where(study_uids):
        studies = {f"study-{k}": uid for k, uid in enumerate(study_uids, 1)}

        def where(name: str) -> str:
            uid = studies.get(name.split("/")[0], "")
            return f"{name} (study {uid})" if uid else name

        return where

    def _list(self, client, filters: dict) -> None:
        if hasattr(client, "find_studies"):
            rows, where = client.find_studies(**filters), client.where
        else:
            rows, where = client.search_studies(**filters), client.base_url
        self.stdout.write(f"{len(rows)} studies on {where} match")
        for row in rows:
            self.stdout.write(
                "  ".join(
                    [
                        row["StudyInstanceUID"],
                        row["PatientID"] or "-",
                        row["StudyDate"] or "-",
                        "/".join(row["ModalitiesInStudy"]) or "-",
                        f"{row['NumberOfStudyRelatedInstances'] or '?'} instances",
                        row["StudyDescription"] or "",
                    ]
                ).rstrip()
            )

    def _pull(self, project, client, study_uids, site, quiet) -> None:
        started = time.monotonic()
        show = not quiet and self.stdout.isatty()

        progress = progress_bar(self, show)

        report = pull(project, client, study_uids, site=site, progress=progress)
        if show:
            self.stdout.write("")
        print_report(self, report, time.monotonic() - started, where=self._where(study_uids))
        if not report.ok:
            sys.exit(1)
