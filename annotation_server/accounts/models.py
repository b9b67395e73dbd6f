"""Institutions and the people who read, arbitrate and manage."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, RegexValidator
from django.db import models
from django.utils.translation import gettext_lazy as _


class Role(models.TextChoices):
    """Roles are granted per project (projects.Membership); these are their names."""

    MANAGER = "manager", _("dataset manager")
    READER = "reader", _("reader")
    ARBITRATOR = "arbitrator", _("arbitrator")
    ADMIN = "admin", _("project admin")


class Site(models.Model):
    """An institution that contributes images or readers. Exports show only `code`."""

    class SiteType(models.TextChoices):
        TERTIARY = "tertiary", _("tertiary hospital")
        SECONDARY = "secondary", _("secondary hospital")
        PRIMARY = "primary", _("primary care")
        IMAGING_CENTRE = "imaging_centre", _("independent imaging centre")
        OTHER = "other", _("other")

    code = models.CharField(
        _("pseudonymous code"),
        max_length=16,
        unique=True,
        validators=[RegexValidator(r"^[A-Z0-9][A-Z0-9-]{1,15}$", _("Use A-Z, 0-9 and '-'."))],
        help_text=_("Shown in exports instead of the institution's name, e.g. S01."),
    )
    name = models.CharField(_("institution"), max_length=200)
    site_type = models.CharField(
        _("site type"), max_length=20, choices=SiteType.choices, default=SiteType.TERTIARY
    )
    region = models.CharField(_("region"), max_length=100, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        ordering = ["code"]
        verbose_name = _("site")
        verbose_name_plural = _("sites")

    def __str__(self) -> str:
        return f"{self.code} {self.name}"


class UserProfile(models.Model):
    class Title(models.TextChoices):
        RESIDENT = "resident", _("resident (住院医师)")
        ATTENDING = "attending", _("attending (主治医师)")
        ASSOCIATE_CHIEF = "associate_chief", _("associate chief (副主任医师)")
        CHIEF = "chief", _("chief (主任医师)")
        TECHNOLOGIST = "technologist", _("technologist")
        OTHER = "other", _("other")

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="profile"
    )
    pseudonym = models.CharField(
        _("pseudonymous id"),
        max_length=16,
        unique=True,
        help_text=_("How this person appears in exports and rosters, e.g. RD007."),
    )
    roles = models.JSONField(
        _("roles"),
        default=list,
        blank=True,
        help_text=_("Roles this person may be given in projects."),
    )
    site = models.ForeignKey(
        Site,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="people",
        verbose_name=_("site"),
    )
    specialty = models.CharField(_("specialty"), max_length=100, blank=True)
    title = models.CharField(_("title"), max_length=20, choices=Title.choices, blank=True)
    years_experience = models.PositiveSmallIntegerField(
        _("years of experience"), null=True, blank=True, validators=[MaxValueValidator(70)]
    )
    training_date = models.DateField(_("training date"), null=True, blank=True)

    class Meta:
        verbose_name = _("user profile")
        verbose_name_plural = _("user profiles")

    def __str__(self) -> str:
        return f"{self.pseudonym} ({self.user.get_username()})"

    def clean(self):
        from django.core.exceptions import ValidationError

        unknown = set(self.roles) - set(Role.values)
        if unknown:
            raise ValidationError({"roles": _("Unknown roles: %s") % ", ".join(sorted(unknown))})

    @property
    def experience_band(self) -> str:
        years = self.years_experience
        if years is None:
            return "unknown"
        for upper, band in ((5, "<5"), (10, "5-9"), (20, "10-19")):
            if years < upper:
                return band
        return ">=20"
