"""Fake PHI: present in every identifying attribute and recorded in truth.json."""

from __future__ import annotations

import datetime as dt

import pytest

from fixtures import build_ct_datasets, build_xr_dataset, dataset_bytes

REQUIRED = {
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "StudyDate",
    "SeriesDate",
    "AcquisitionDate",
    "ContentDate",
    "StudyTime",
    "SeriesTime",
    "AcquisitionTime",
    "ContentTime",
    "AccessionNumber",
    "InstitutionName",
    "InstitutionAddress",
    "ReferringPhysicianName",
    "PerformingPhysicianName",
    "OperatorsName",
    "StationName",
    "DeviceSerialNumber",
    "StudyID",
    "OtherPatientIDs",
    "PatientAddress",
    "PatientTelephoneNumbers",
}


@pytest.fixture(scope="module", params=["ct", "xr"])
def sample(request):
    if request.param == "ct":
        datasets, truth = build_ct_datasets(slices=1, seed=21, nodules=0)
        return datasets[0], truth
    return build_xr_dataset(seed=21, size=64)


def test_phi_attributes_present_and_recorded(sample):
    ds, truth = sample
    phi = truth["phi"]
    assert not REQUIRED - set(phi["attributes"])
    for keyword, value in phi["attributes"].items():
        assert str(ds.data_element(keyword).value) == value, keyword
        assert value
    assert ds.PatientAge == truth["patient"]["PatientAge"] == phi["kept"]["PatientAge"]
    assert ds.PatientSex in ("M", "F")
    assert ds.SpecificCharacterSet == "ISO_IR 192"


def test_private_block(sample):
    ds, truth = sample
    phi = truth["phi"]
    block = ds.private_block(0x0013, phi["private_creator"])
    assert len(phi["private"]) >= 3
    for p in phi["private"]:
        element = int(p["tag"][-3:-1], 16)
        assert block[element].value == p["value"]
        vr = block[element].VR
        assert vr == p["vr"]


def test_every_phi_string_is_in_the_file(sample):
    ds, truth = sample
    text = dataset_bytes(ds).decode("utf-8", "replace")
    strings = truth["phi"]["strings"]
    assert truth["phi"]["attributes"]["PatientName"] in strings
    for s in strings:
        assert s in text, s


def test_age_matches_dates(sample):
    ds, _ = sample
    birth = dt.datetime.strptime(ds.PatientBirthDate, "%Y%m%d").date()
    study = dt.datetime.strptime(ds.StudyDate, "%Y%m%d").date()
    years = study.year - birth.year - ((study.month, study.day) < (birth.month, birth.day))
    assert ds.PatientAge == f"{years:03d}Y"


def test_names_pinyin_and_chinese():
    names = []
    for seed in range(12):
        ds, _ = build_xr_dataset(seed=seed, size=64)
        names.append(str(ds.PatientName))
    with_hanzi = [n for n in names if "=" in n]
    assert with_hanzi and len(with_hanzi) < len(names)
    assert all(any("\u4e00" <= ch <= "\u9fff" for ch in n) for n in with_hanzi)
    assert all("^" in n for n in names)


def test_same_seed_same_patient_different_study():
    ct, tct = build_ct_datasets(slices=1, seed=30, nodules=0)
    xr, txr = build_xr_dataset(seed=30, size=64)
    assert ct[0].PatientID == xr.PatientID and ct[0].PatientName == xr.PatientName
    assert tct["study_instance_uid"] != txr["study_instance_uid"]
