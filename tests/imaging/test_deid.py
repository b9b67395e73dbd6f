"""De-identification engine on synthetic studies with realistic fake PHI (no database)."""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Iterator

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import SecondaryCaptureImageStorage

import fixtures
from annotation_server.imaging.deid import (
    BASIC_PROFILE,
    PROFILE,
    Deidentifier,
    DeidError,
    DeidOptions,
    burned_in_risk,
    is_valid_uid,
    resolve_action,
)
from annotation_server.imaging.deid.profile import DATE_VRS

SECRET = b"project-secret-for-tests"
TIME_KEYWORDS = ("StudyTime", "SeriesTime", "AcquisitionTime", "ContentTime")


@pytest.fixture(scope="module")
def ct() -> tuple[list[Dataset], dict]:
    return fixtures.build_ct_datasets(slices=3, seed=1)


@pytest.fixture(scope="module")
def xr() -> tuple[Dataset, dict]:
    return fixtures.build_xr_dataset(seed=1, size=256)


def all_strings(ds: Dataset) -> Iterator[str]:
    """The str value of every element, recursively, File Meta included."""
    meta = getattr(ds, "file_meta", None)
    if meta is not None:
        yield from all_strings(meta)
    for elem in ds:
        if elem.VR == "SQ":
            for item in elem.value:
                yield from all_strings(item)
        elif elem.tag != 0x7FE00010:
            value = elem.value
            if isinstance(value, bytes):
                yield value.decode("utf-8", "ignore")
            else:
                yield str(value)


def leaked(ds: Dataset, phi_strings: list[str]) -> list[str]:
    text = "\n".join(all_strings(ds))
    return [s for s in phi_strings if s in text]


# -- the table ---------------------------------------------------------------------------


def test_profile_table_is_large_and_well_formed() -> None:
    assert len(BASIC_PROFILE) >= 400
    allowed = {"D", "Z", "X", "K", "C", "U", "U*"}
    for (group, element), rule in PROFILE.items():
        assert 0 <= group <= 0xFFFF and 0 <= element <= 0xFFFF
        assert set(rule.codes) <= allowed, rule
        assert rule.keyword
    combos = {rule.basic for rule in BASIC_PROFILE.values()}
    assert {"X/Z", "X/D", "X/Z/D", "Z/D", "X/Z/U*"} <= combos


@pytest.mark.parametrize(
    ("keyword_tag", "vr", "options", "expected"),
    [
        ((0x0008, 0x103E), "LO", DeidOptions(), "C"),  # SeriesDescription X, clean C
        ((0x0008, 0x103E), "LO", DeidOptions(clean_descriptors=False), "X"),
        ((0x0008, 0x0020), "DA", DeidOptions(), "S"),  # StudyDate Z, modified dates C
        ((0x0008, 0x0020), "DA", DeidOptions(retain_longitudinal_modified_dates=False), "Z"),
        ((0x0008, 0x0021), "DA", DeidOptions(retain_longitudinal_modified_dates=False), "X"),
        ((0x0008, 0x0030), "TM", DeidOptions(), "K"),  # times kept under the option
        ((0x0008, 0x1140), "SQ", DeidOptions(), "R"),  # X/Z/U*: keep, replace UIDs inside
        ((0x0008, 0x1110), "SQ", DeidOptions(), "Z"),  # X/Z sequence: empty
        ((0x0018, 0x1000), "LO", DeidOptions(), "D"),  # X/Z/D: dummy
        ((0x0010, 0x1010), "AS", DeidOptions(), "K"),  # PatientAge kept (RefSet)
        ((0x0010, 0x0040), "CS", DeidOptions(), "K"),  # PatientSex kept (RefSet)
        ((0x0010, 0x0020), "LO", DeidOptions(), "P"),
        ((0x0020, 0x000D), "UI", DeidOptions(), "U"),
        ((0x0008, 0x0070), "LO", DeidOptions(), "K"),  # Manufacturer: not in the table
    ],
)
def test_resolve_action(keyword_tag, vr, options, expected) -> None:
    assert resolve_action(keyword_tag, vr, options) == expected


# -- identifiers ---------------------------------------------------------------------------


def test_derived_identifiers_are_stable_and_well_formed() -> None:
    a, b = Deidentifier(SECRET), Deidentifier(SECRET)
    uid = a.uid("1.2.3.4")
    assert uid == b.uid("1.2.3.4") and uid.startswith("2.25.") and is_valid_uid(uid)
    assert len(uid) <= 64
    assert a.uid("1.2.3.5") != uid
    assert Deidentifier(b"other").uid("1.2.3.4") != uid
    pseudo = a.pseudonym("ZY123")
    assert pseudo == b.pseudonym("ZY123")
    assert len(pseudo) == 11 and pseudo[0] == "P" and pseudo == pseudo.upper()
    assert Deidentifier(b"other").pseudonym("ZY123") != pseudo
    shifts = {a.date_shift_days(f"patient-{i}") for i in range(200)}
    assert all(-3650 <= s <= -1 for s in shifts) and len(shifts) > 150


def test_empty_secret_is_refused() -> None:
    with pytest.raises(ValueError):
        Deidentifier(b"")


def test_non_dataset_raises_deid_error() -> None:
    with pytest.raises(DeidError):
        Deidentifier(SECRET).apply("not a dataset")  # type: ignore[arg-type]


# -- PHI ---------------------------------------------------------------------------------


def test_no_phi_survives_in_ct_with_default_options(ct) -> None:
    datasets, truth = ct
    phi = truth["phi"]
    # Times are kept by the Modified Dates Option (whole-day shift): not identifying alone.
    times = {phi["attributes"][k] for k in TIME_KEYWORDS}
    strings = [s for s in phi["strings"] if s not in times]
    deid = Deidentifier(SECRET)
    for ds in datasets:
        out = deid.apply(ds).dataset
        assert leaked(out, strings) == []
        assert not any(elem.tag.is_private for elem in out)


@pytest.mark.parametrize(
    "options",
    [
        DeidOptions(clean_descriptors=False, retain_longitudinal_modified_dates=False),
        DeidOptions(clean_descriptors=True, retain_longitudinal_modified_dates=False),
    ],
)
def test_no_phi_at_all_survives_without_longitudinal_option(ct, xr, options) -> None:
    deid = Deidentifier(SECRET, options)
    (ct_datasets, ct_truth), (xr_ds, xr_truth) = ct, xr
    for ds in ct_datasets:
        assert leaked(deid.apply(ds).dataset, ct_truth["phi"]["strings"]) == []
    assert leaked(deid.apply(xr_ds).dataset, xr_truth["phi"]["strings"]) == []


def test_no_phi_survives_in_radiograph(xr) -> None:
    ds, truth = xr
    phi = truth["phi"]
    times = {phi["attributes"][k] for k in TIME_KEYWORDS if k in phi["attributes"]}
    out = Deidentifier(SECRET).apply(ds).dataset
    assert leaked(out, [s for s in phi["strings"] if s not in times]) == []


def test_input_is_not_modified(ct) -> None:
    ds = ct[0][0]
    before = fixtures.dataset_bytes(ds)
    Deidentifier(SECRET).apply(ds)
    assert fixtures.dataset_bytes(ds) == before


def test_age_and_sex_kept(ct, xr) -> None:
    for ds, truth in ((ct[0][0], ct[1]), (xr[0], xr[1])):
        out = Deidentifier(SECRET).apply(ds).dataset
        assert out.PatientAge == truth["phi"]["kept"]["PatientAge"]
        assert out.PatientSex == truth["phi"]["kept"]["PatientSex"]


def test_patient_age_computed_when_missing(ct) -> None:
    ds = copy.deepcopy(ct[0][0])
    expected = ds.PatientAge
    del ds.PatientAge
    out = Deidentifier(SECRET).apply(ds).dataset
    assert out.PatientAge == expected
    assert out.PatientBirthDate == ""


def test_patient_identity_and_markers(ct) -> None:
    deid = Deidentifier(SECRET)
    ds = ct[0][0]
    out = deid.apply(ds).dataset
    assert out.PatientID == deid.pseudonym(ds.PatientID) == out.PatientName
    assert out.PatientIdentityRemoved == "YES"
    codes = [item.CodeValue for item in out.DeidentificationMethodCodeSequence]
    assert codes == ["113100", "113105", "113107"]
    assert {item.CodingSchemeDesignator for item in out.DeidentificationMethodCodeSequence} == {
        "DCM"
    }
    assert "Basic Profile" in out.DeidentificationMethod[0]
    bare = Deidentifier(SECRET, DeidOptions(False, False)).apply(ds).dataset
    assert [item.CodeValue for item in bare.DeidentificationMethodCodeSequence] == ["113100"]


def test_missing_patient_id_gets_stable_pseudonym(ct) -> None:
    deid = Deidentifier(SECRET)
    a, b = copy.deepcopy(ct[0][0]), copy.deepcopy(ct[0][1])
    for ds in (a, b):
        ds.PatientID = ""
    out_a, out_b = deid.apply(a).dataset, deid.apply(b).dataset
    assert out_a.PatientID and out_a.PatientID == out_b.PatientID
    assert out_a.PatientID == deid.pseudonym("study:" + a.StudyInstanceUID)
    del a.PatientID
    assert deid.apply(a).dataset.PatientID == out_a.PatientID


# -- dates ---------------------------------------------------------------------------------


def test_date_shift_consistent_across_series(ct) -> None:
    datasets, truth = ct
    deid = Deidentifier(SECRET)
    days = deid.date_shift_days(datasets[0].PatientID)
    original = dt.datetime.strptime(datasets[0].StudyDate, "%Y%m%d").date()
    expected = (original + dt.timedelta(days=days)).strftime("%Y%m%d")
    for ds in datasets:
        result = deid.apply(ds)
        out = result.dataset
        for keyword in ("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate"):
            assert out[keyword].value == expected
        for keyword in TIME_KEYWORDS:
            assert out[keyword].value == ds[keyword].value
        shifts = [m for m in result.mappings if m.kind == "date_shift"]
        assert [(m.original, m.replacement) for m in shifts] == [(ds.PatientID, str(days))]
        assert out.LongitudinalTemporalInformationModified == "MODIFIED"


def test_dates_removed_without_longitudinal_option(ct) -> None:
    deid = Deidentifier(SECRET, DeidOptions(retain_longitudinal_modified_dates=False))
    for ds in ct[0]:
        out = deid.apply(ds).dataset
        for elem in out:
            if elem.VR in DATE_VRS or elem.VR == "TM":
                assert elem.is_empty, elem
        assert out.LongitudinalTemporalInformationModified == "REMOVED"
        assert "StudyDate" in out and out.StudyDate == ""  # Z: kept empty
        assert "SeriesDate" not in out  # X/D: removed


# -- descriptors -----------------------------------------------------------------------------


def test_clean_descriptors_keeps_clean_series_description(ct) -> None:
    ds = ct[0][0]
    kept = Deidentifier(SECRET).apply(ds).dataset
    assert kept.SeriesDescription == ds.SeriesDescription
    assert kept.ProtocolName == ds.ProtocolName
    removed = Deidentifier(SECRET, DeidOptions(clean_descriptors=False)).apply(ds).dataset
    assert "SeriesDescription" not in removed  # X
    assert removed.ProtocolName == "ANONYMIZED"  # X/D


def test_clean_descriptors_cuts_identifiers_out_of_descriptors(ct) -> None:
    ds = copy.deepcopy(ct[0][0])
    ds.SeriesDescription = f"Chest {ds.PatientID} lung"
    ds.ImageComments = f"seen by Zhu Fangchao at {ds.InstitutionName}"
    ds.PerformingPhysicianName = "Zhu^Fangchao"
    out = Deidentifier(SECRET).apply(ds).dataset
    assert out.SeriesDescription == "Chest *** lung"
    assert "Fangchao" not in out.ImageComments and ds.InstitutionName not in out.ImageComments
    assert out.ImageComments.startswith("seen by")


# -- burned-in text --------------------------------------------------------------------------


def test_burned_in_variant_and_secondary_capture_flagged(ct) -> None:
    datasets, truth = fixtures.build_ct_datasets(slices=3, seed=1, defect="burned-in-text")
    deid = Deidentifier(SECRET)
    reasons = [deid.apply(ds).quarantine_reason for ds in datasets]
    flagged = [i for i, r in enumerate(reasons) if r]
    burned = [i for i, ds in enumerate(datasets) if ds.BurnedInAnnotation == "YES"]
    assert flagged == burned and burned
    assert "BurnedInAnnotation" in reasons[burned[0]]

    sc = copy.deepcopy(ct[0][0])
    sc.SOPClassUID = SecondaryCaptureImageStorage
    sc.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    sc.BurnedInAnnotation = "NO"
    assert "Secondary Capture" in (deid.apply(sc).quarantine_reason or "")
    assert burned_in_risk(ct[0][0]) is None


def test_burned_in_rules() -> None:
    ds = Dataset()
    assert burned_in_risk(ds) is None
    ds.Modality = "US"
    assert "US" in (burned_in_risk(ds) or "")
    ds = Dataset()
    ds.ImageType = ["DERIVED", "SECONDARY"]
    ds.ConversionType = "WSD"
    assert "WSD" in (burned_in_risk(ds) or "")
    ds = Dataset()
    ds.RecognizableVisualFeatures = "YES"
    assert burned_in_risk(ds)
    ds = Dataset()
    ds.ImageType = ["DERIVED", "SECONDARY", "SCREEN SAVE"]
    assert burned_in_risk(ds)


def test_xr_burned_in_variant_flagged() -> None:
    ds, _ = fixtures.build_xr_dataset(seed=1, size=256, defect="burned-in-text")
    assert Deidentifier(SECRET).apply(ds).quarantine_reason


# -- mappings and UIDs -------------------------------------------------------------------------


def test_mappings_name_the_originals(ct) -> None:
    deid = Deidentifier(SECRET)
    ds = ct[0][0]
    result = deid.apply(ds)
    by_kind = {(m.kind, m.original): m.replacement for m in result.mappings}
    out = result.dataset
    assert by_kind[("patient_id", ds.PatientID)] == out.PatientID
    assert by_kind[("patient_name", str(ds.PatientName))] == out.PatientName
    assert by_kind[("study_uid", ds.StudyInstanceUID)] == out.StudyInstanceUID
    assert by_kind[("series_uid", ds.SeriesInstanceUID)] == out.SeriesInstanceUID
    assert by_kind[("sop_uid", ds.SOPInstanceUID)] == out.SOPInstanceUID
    assert by_kind[("other_uid", ds.FrameOfReferenceUID)] == out.FrameOfReferenceUID
    assert out.file_meta.MediaStorageSOPInstanceUID == out.SOPInstanceUID
    assert result.removed >= 20


def test_series_shares_new_study_and_series_uids(ct) -> None:
    deid = Deidentifier(SECRET)
    outs = [deid.apply(ds).dataset for ds in ct[0]]
    assert len({o.StudyInstanceUID for o in outs}) == 1
    assert len({o.SeriesInstanceUID for o in outs}) == 1
    assert len({o.SOPInstanceUID for o in outs}) == len(outs)
    assert outs[0].StudyInstanceUID != ct[0][0].StudyInstanceUID


def test_referenced_uids_follow_their_instances(ct) -> None:
    ds = copy.deepcopy(ct[0][1])
    ref = Dataset()
    ref.ReferencedSOPClassUID = ct[0][0].SOPClassUID
    ref.ReferencedSOPInstanceUID = ct[0][0].SOPInstanceUID
    ds.ReferencedImageSequence = [ref]
    deid = Deidentifier(SECRET)
    out = deid.apply(ds).dataset
    first = deid.apply(ct[0][0]).dataset
    item = out.ReferencedImageSequence[0]
    assert item.ReferencedSOPInstanceUID == first.SOPInstanceUID
    assert item.ReferencedSOPClassUID == ct[0][0].SOPClassUID


def test_deterministic_bytes(ct, xr) -> None:
    for ds in (ct[0][0], xr[0]):
        a = fixtures.dataset_bytes(Deidentifier(SECRET).apply(ds).dataset)
        b = fixtures.dataset_bytes(Deidentifier(SECRET).apply(ds).dataset)
        c = fixtures.dataset_bytes(Deidentifier(b"another project").apply(ds).dataset)
        assert a == b
        assert a != c


def test_pixel_data_untouched(ct) -> None:
    ds = ct[0][0]
    out = Deidentifier(SECRET).apply(ds).dataset
    assert out.PixelData == ds.PixelData


def test_overlays_curves_and_nested_private_tags_removed(ct) -> None:
    ds = copy.deepcopy(ct[0][0])
    ds.add_new(0x60000010, "US", 512)
    ds.add_new(0x60003000, "OW", b"\x00" * 8)
    ds.add_new(0x60004000, "LT", "overlay by Dr Who")
    ds.add_new(0x50000005, "US", 2)
    item = Dataset()
    item.ReferencedSOPInstanceUID = "1.2.3.4.5"
    block = item.private_block(0x0029, "VENDOR X", create=True)
    block.add_new(0x01, "LO", "secret ward")
    ds.ReferencedStudySequence = [item]
    ds.SourceImageSequence = [item]
    out = Deidentifier(SECRET).apply(ds).dataset
    assert not any(0x5000 <= e.tag.group <= 0x60FF for e in out)
    assert len(out.ReferencedStudySequence) == 0  # X/Z sequence emptied
    src = out.SourceImageSequence[0]  # X/Z/U*: kept, UIDs replaced, private removed
    assert src.ReferencedSOPInstanceUID != "1.2.3.4.5"
    assert not any(e.tag.is_private for e in src)
