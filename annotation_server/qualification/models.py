"""Qualification tests and attempts.

The tables were created by the reading app (which owned these models before
qualification became its own app) and keep their names: the move was state
only (qualification 0001, reading 0002). Reading's `ReadingTask.attempt` points
here by string, so reading never imports this app.
"""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _


class QualificationTest(models.Model):
    """A project's qualification set: cases with a known reference, read blind.

    An attempt reads a draw from the set (`cases_per_attempt`, `draw`), like an
    exam: by default each retake reads cases the reader has not read before, so
    what an earlier attempt taught about one case cannot be replayed on it.
    """

    class Draw(models.TextChoices):
        UNSEEN = "unseen", _("only cases the reader has not read before")
        UNSEEN_FIRST = (
            "unseen_first",
            _("cases not read before first, then the longest-ago read ones"),
        )
        SAME = "same", _("the same cases on every attempt")

    project = models.ForeignKey(
        "projects.Project", on_delete=models.CASCADE, related_name="qualification_tests"
    )
    name = models.CharField(_("name"), max_length=200)
    cases = models.ManyToManyField(
        "projects.Case", related_name="qualification_tests", verbose_name=_("cases")
    )
    min_sensitivity = models.FloatField(
        _("minimum sensitivity"),
        default=0.85,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
    )
    max_fp_per_case = models.FloatField(_("maximum false positives per case"), default=1.0)
    min_kappa = models.FloatField(
        _("minimum attribute kappa"), null=True, blank=True, help_text=_("Empty: not gated.")
    )
    max_attempts = models.PositiveSmallIntegerField(_("attempts allowed"), default=3)
    cases_per_attempt = models.PositiveSmallIntegerField(
        _("cases per attempt"),
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text=_("Empty: the set's cases shared out evenly over the attempts allowed."),
    )
    draw = models.CharField(
        _("how an attempt's cases are drawn"),
        max_length=16,
        choices=Draw.choices,
        default=Draw.UNSEEN,
    )
    active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        db_table = "reading_qualificationtest"
        ordering = ["project", "name"]
        verbose_name = _("qualification test")
        verbose_name_plural = _("qualification tests")

    def __str__(self) -> str:
        return f"{self.project}: {self.name}"


class QualificationAttempt(models.Model):
    test = models.ForeignKey(QualificationTest, on_delete=models.PROTECT, related_name="attempts")
    reader = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="qualification_attempts"
    )
    number = models.PositiveSmallIntegerField(_("attempt"))
    started_at = models.DateTimeField(_("started"), auto_now_add=True)
    submitted_at = models.DateTimeField(_("submitted"), null=True, blank=True)
    sensitivity = models.FloatField(null=True, blank=True)
    fp_per_case = models.FloatField(null=True, blank=True)
    kappa = models.FloatField(null=True, blank=True)
    passed = models.BooleanField(null=True, blank=True)
    details = models.JSONField(default=dict, blank=True, help_text=_("Misses and false positives."))

    class Meta:
        db_table = "reading_qualificationattempt"
        ordering = ["test", "reader", "number"]
        verbose_name = _("qualification attempt")
        verbose_name_plural = _("qualification attempts")
        constraints = [
            models.UniqueConstraint(
                fields=["test", "reader", "number"], name="qualification_attempt_number"
            )
        ]

    def __str__(self) -> str:
        return f"{self.reader} — {self.test} #{self.number}"
