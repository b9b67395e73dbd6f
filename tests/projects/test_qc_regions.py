"""QC defaults follow the project's modality and body part: a head CT project does
not judge head CTs by the lung-CT defaults (qc/profile.py region_of, default_for;
quality.services.profile_for passes the project's body part)."""

from __future__ import annotations

import pytest

import fixtures
import qc
from annotation_server.quality.services import profile_for
from qc.profile import region_of
from tests import factories


def _head_ct():
    """A 5 mm axial series labelled HEAD (the synthetic phantom, relabelled)."""
    datasets, _ = fixtures.build_ct_datasets(
        slices=24, seed=7, matrix=64, thickness=5.0, spacing=5.0
    )
    for ds in datasets:
        ds.BodyPartExamined = "HEAD"
    return qc.SeriesInput.from_datasets(datasets, source="head")


@pytest.mark.parametrize(
    "text, region",
    [
        ("CHEST", "chest"),
        ("胸部", "chest"),
        ("Head", "head"),
        ("BRAIN", "head"),
        ("颅脑", "head"),
        ("ABDOMEN", "abdomen"),
        ("knee", "generic"),
        ("", ""),
    ],
)
def test_body_parts_map_onto_default_regions(text, region):
    assert region_of(text) == region


def test_a_head_ct_fails_on_the_chest_defaults_and_passes_on_head_ones():
    series = _head_ct()
    chest = qc.run_series(series, qc.Profile.default_for("CT"))
    failing = {r.rule for r in chest.results if r.status == "fail"}
    assert chest.status == "fail"
    assert {"body_part_match", "slice_thickness"} <= failing

    head = qc.run_series(series, qc.Profile.default_for("CT", "HEAD"))
    assert head.status != "fail", [r.to_dict() for r in head.results if r.status == "fail"]
    body = next(r for r in head.results if r.rule == "body_part_match")
    assert body.status == "pass"


def test_brain_counts_as_head_for_the_body_part_rule():
    datasets, _ = fixtures.build_ct_datasets(
        slices=24, seed=7, matrix=64, thickness=5.0, spacing=5.0
    )
    for ds in datasets:
        ds.BodyPartExamined = "BRAIN"
    report = qc.run_series(
        qc.SeriesInput.from_datasets(datasets), qc.Profile.default_for("CT", "颅脑")
    )
    assert next(r for r in report.results if r.rule == "body_part_match").status == "pass"


def test_stored_overrides_start_from_the_body_parts_defaults():
    profile = qc.Profile.from_dict({"base": "CT", "region": "head", "max_noise_hu": 33})
    assert profile.name == "head-ct"
    assert profile.max_noise_hu == 33
    assert profile.min_slices == 20


@pytest.mark.django_db
def test_profile_for_uses_the_projects_body_part():
    project = factories.ProjectFactory(modality="CT", body_part="HEAD")
    assert profile_for(project).name == "head-ct"
    project.qc_profile = {"max_noise_hu": 45}
    project.save()
    profile = profile_for(project)
    assert (profile.name, profile.max_noise_hu, profile.fail_slice_thickness_mm) == (
        "head-ct",
        45,
        10.0,
    )
    chest = factories.ProjectFactory(modality="CT", body_part="")
    assert profile_for(chest).name == "lung-ct"
