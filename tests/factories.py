"""factory_boy factories for RefSet's models (no DICOM files: index rows only)."""

from __future__ import annotations

import factory
from django.contrib.auth import get_user_model

from annotation_server.accounts.models import Site, UserProfile
from annotation_server.imaging.models import Series, Study
from annotation_server.projects.models import Case, LabelSchema, Project, ReadingProtocol
from annotation_server.reading.models import ReadingTask

PASSWORD = "correct-horse-battery-9"


class SiteFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Site
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"S{n:02d}")
    name = factory.Sequence(lambda n: f"第{n}人民医院")


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def profile(self, create, extracted, **kwargs):
        if create:
            self.save()
            UserProfile.objects.get_or_create(
                user=self, defaults={"pseudonym": f"RD{self.pk:03d}", **kwargs}
            )


def schema(key: str) -> LabelSchema:
    """A shipped schema. Migrations load them, but a transactional test's flush
    empties the table for the tests after it, so recreate them from the JSON."""
    from annotation_server.projects.label_schemas import shipped

    item = next(i for i in shipped() if i["key"] == key)
    found, _ = LabelSchema.objects.get_or_create(
        key=key,
        version=item["version"],
        defaults={"name": item["name"], "definition": item["definition"]},
    )
    return found


class ProjectFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Project
        skip_postgeneration_save = True

    slug = factory.Sequence(lambda n: f"project-{n}")
    name = factory.Sequence(lambda n: f"Project {n}")
    task_type = Project.TaskType.DETECTION_3D
    status = Project.Status.ACTIVE
    modality = "CT"
    label_schema = factory.LazyFunction(lambda: schema("lung-nodule-ct"))
    protocol = factory.RelatedFactory(
        "tests.factories.ProtocolFactory", factory_related_name="project"
    )


class ProtocolFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ReadingProtocol

    readers_per_case = 3


class StudyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Study

    project = factory.SubFactory(ProjectFactory)
    study_uid = factory.Sequence(lambda n: f"2.25.{1000 + n}")
    patient_pseudo_id = factory.Sequence(lambda n: f"P{n:05d}")


class SeriesFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Series

    study = factory.SubFactory(StudyFactory)
    series_uid = factory.Sequence(lambda n: f"2.25.{900000 + n}")
    modality = "CT"


class CaseFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Case

    project = factory.SubFactory(ProjectFactory)
    series = factory.LazyAttribute(lambda o: SeriesFactory(study__project=o.project))
    code = factory.Sequence(lambda n: f"C{n:05d}")
    state = Case.State.READING
    qc_status = Case.QcStatus.PASS


class TaskFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ReadingTask

    case = factory.SubFactory(CaseFactory)
    reader = factory.SubFactory(UserFactory)
    phase = 1


def nodule_geometry(x=10.0, y=-20.0, z=-100.0, slice_index=5, kind="ellipse") -> dict:
    points = {
        "point": [[100, 120]],
        "ellipse": [[95, 115], [105, 125]],
        "contour": [[95, 115], [105, 115], [100, 125]],
    }[kind]
    return {
        "kind": kind,
        "shapes": [{"slice_index": slice_index, "points": points}],
        "centre_mm": [x, y, z],
    }


def complete_nodule_attributes(**overrides) -> dict:
    attrs = {"nodule_type": "solid", "long_axis_mm": 6.0, "malignancy": 3}
    attrs.update(overrides)
    return attrs
