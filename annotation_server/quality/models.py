"""Image-QC reports of cases (the rules themselves are the framework-free qc/)."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from annotation_server.projects.models import Case


class QcReport(models.Model):
    """The image-QC result of one series under the project's profile at the time."""

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="qc_reports")
    status = models.CharField(_("status"), max_length=8)
    profile_version = models.PositiveIntegerField(_("QC profile version"), default=1)
    profile = models.JSONField(_("profile used"))
    results = models.JSONField(_("rule results"))
    created_at = models.DateTimeField(_("checked"), auto_now_add=True)

    class Meta:
        db_table = "projects_qcreport"  # created by the projects app; kept when it moved here
        ordering = ["case", "-created_at"]
        verbose_name = _("QC report")
        verbose_name_plural = _("QC reports")

    def __str__(self) -> str:
        return f"QC {self.status} · {self.case}"

    def failing(self) -> list[dict]:
        return [r for r in self.results if r["status"] in ("fail", "warn")]
