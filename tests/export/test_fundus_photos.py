"""export/fundus.py without the database: the source format rule, JPEG segments
stripped, the photographs of a version that ships without images, and a retired
case's row in the grades table. The DICOM objects are built as the photo import
builds them (imaging/photo/convert.py) from fixtures/fundus.py photographs."""

from __future__ import annotations

import io
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image, ImageOps

from export import fundus as fx
from export.model import ReadRecord, ReferenceLabelsRecord
from export.package import write_package
from export.verify import photo_metadata, verify
from fixtures import fundus
from tests.export.builders import make_fundus_input

SIZE = 128
SPECS = [(1, "OD", "jpeg"), (1, "OS", "png"), (2, "OS", "tiff")]


def _input(tmp_path, **kw):
    return make_fundus_input(tmp_path / "dicom", SPECS, SIZE, **kw)


def test_the_source_format_is_jpeg_when_the_dicom_says_lossy_else_recorded_else_png(tmp_path):
    inp, _ = _input(tmp_path)
    jpeg, png, tiff = (c.series[0].instances[0] for c in inp.cases)
    assert fx.header(jpeg.path).lossy and not fx.header(png.path).lossy
    assert [fx.source_format(i) for i in (jpeg, png, tiff)] == ["JPEG", "PNG", "PNG"]
    assert fx.source_format(replace(tiff, source_format="TIFF")) == "TIFF"
    # a recorded lossless format never overrides the DICOM's lossy JPEG flag
    assert fx.source_format(replace(jpeg, source_format="PNG")) == "JPEG"
    assert [fx.header(i.path).laterality for i in (jpeg, png, tiff)] == ["OD", "OS", "OS"]
    # recorded at import: the file format and the laterality, used as recorded
    assert fx.source_format(replace(jpeg, source_format="JPEG")) == "JPEG"
    assert fx.source_format(replace(png, source_format="DICOM")) == "PNG"
    assert fx.source_format(replace(jpeg, source_format="DICOM")) == "JPEG"
    assert [fx.source_file(replace(png, source_format=f)) for f in ("DICOM", "", "gif")] == [
        "DICOM",
        "",
        "",
    ]
    head = fx.header(png.path)
    assert fx.laterality(replace(png, laterality="R"), head) == "OD"
    assert fx.laterality(replace(png, laterality=""), head) == ""  # recorded: says nothing
    assert fx.laterality(png, head) == "OS"  # not recorded (None): from the header


def test_the_recorded_source_file_reaches_photos_csv_and_the_manifest(tmp_path):
    inp, _ = _input(tmp_path)
    recorded = ("JPEG", "DICOM", "TIFF")
    cases = tuple(
        replace(c, series=tuple(replace(s, instances=tuple(
            replace(i, source_format=fmt, laterality="L") for i in s.instances)) for s in c.series))
        for c, fmt in zip(inp.cases, recorded, strict=True)
    )  # fmt: skip
    inp = replace(inp, cases=cases)
    root = write_package(inp, tmp_path / "out")
    assert verify(root) == []
    lines = (root / fx.PHOTOS_TABLE).read_text(encoding="utf-8-sig").splitlines()
    header = lines[0].split(",")
    rows = [dict(zip(header, r.split(","), strict=True)) for r in lines[1:]]
    assert [(r["source_file"], r["source_format"], r["photo_format"]) for r in rows] == [
        ("JPEG", "JPEG", "JPEG"),
        ("DICOM", "PNG", "PNG"),
        ("TIFF", "TIFF", "TIFF"),
    ]
    assert [r["laterality"] for r in rows] == ["OS", "OS", "OS"]  # as recorded, not the header
    import json

    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["photographs"]["source_files"] == {"DICOM": 1, "JPEG": 1, "TIFF": 1}
    assert manifest["photographs"]["source_formats"] == {"JPEG": 1, "PNG": 1, "TIFF": 1}
    dictionary = (root / "dictionary/data_dictionary.csv").read_text(encoding="utf-8-sig")
    assert "tables/photos.csv,source_file," in dictionary


def test_stripping_a_camera_jpeg_leaves_its_pixels_and_nothing_else(tmp_path):
    rgb, truth = fundus.build_fundus(3, laterality="OD", size=SIZE, grade=2)
    truth["laterality"] = "OD"
    source = fundus.encode_photo(rgb, truth, "jpeg")
    assert photo_metadata(source)  # the camera file carries EXIF, XMP, ICC, comments
    stripped = fx.strip_jpeg_segments(source)
    assert photo_metadata(stripped) == []
    assert np.array_equal(fx.decode(stripped), fx.decode(source))
    for phi in fundus.phi_strings(truth):
        if len(phi) >= 5:
            assert phi.encode() not in stripped, phi
    with pytest.raises(ValueError, match="not a JPEG"):
        fx.strip_jpeg_segments(b"\x89PNG")


def test_a_package_without_images_lists_the_photographs_but_ships_none(tmp_path):
    inp, _ = _input(tmp_path, include_images=False)
    root = write_package(inp, tmp_path / "out")
    assert verify(root) == []
    assert not (root / "photos").exists() and not list(root.glob("images/**/*.dcm"))
    rows = (root / "tables/photos.csv").read_text(encoding="utf-8-sig").splitlines()
    assert len(rows) == 4 and rows[0].startswith("image_id,case_id,")
    assert all(",,," in row for row in rows[1:])  # no photo path, hash, DICOM path


def test_photos_and_the_grades_of_a_retired_case(tmp_path):
    inp, sources = _input(tmp_path)
    cases = list(inp.cases)
    cases[2] = replace(cases[2], retired=True, retired_reason="duplicate")
    read = ReadRecord("7", "F0000", cases[0].series[0].series_uid, "R1", 1,
                      case_labels={"dr_grade": 4, "dmo": "present"},
                      derived={"referable_dr": True, "vertical_cdr": 0.4})  # fmt: skip
    labels = ReferenceLabelsRecord(
        "F0000", 2, "arbitrated", {"referable_dr": True, "vertical_cdr": 0.45}, {"dr_grade": "9"}
    )
    inp = replace(
        inp, cases=tuple(cases), reads=(read,), reference_labels={"F0000": labels},
        case_labels={"F0000": {"dr_grade": 4, "dmo": "present"}},
    )  # fmt: skip
    root = write_package(inp, tmp_path / "out")
    assert verify(root) == []
    lines = (root / fx.GRADES_TABLE).read_text(encoding="utf-8-sig").splitlines()
    header = lines[0].split(",")
    rows = {r.split(",")[1]: dict(zip(header, r.split(","), strict=True)) for r in lines[1:]}
    croissant = (root / "croissant.json").read_text()
    for fileset in ("photos-jpeg", "photos-png", "coco-json"):
        assert f'"@id": "{fileset}"' in croissant
    mlc = pytest.importorskip("mlcroissant")
    names = {rs.name for rs in mlc.Dataset(jsonld=root / "croissant.json").metadata.record_sets}
    assert {fx.GRADES_TABLE, fx.READS_TABLE, fx.PHOTOS_TABLE} <= names
    first = rows["F0000"]
    assert first["dr_grade"] == "4" and first["grade_decision"] == "arbitrated"
    assert first["dmo_decision"] == "auto-consensus" and first["arbitration_id"] == "9"
    assert first["vertical_cdr"] == "0.45" and first["reader_grades"] == "R1@1:4"
    assert rows["F0002"]["retired"] == "true" and rows["F0002"]["dr_grade"] == ""
    # each photograph's pixels as the import stored them; the JPEG's against its source
    for (source, _), case in zip(sources, inp.cases, strict=True):
        photo = next(root.glob(f"photos/{case.case_id}/*"))
        data = photo.read_bytes()
        assert photo.name.startswith(f"{case.case_id}-1.")
        original = np.asarray(
            ImageOps.exif_transpose(Image.open(io.BytesIO(source))).convert("RGB")
        )
        if photo.suffix == ".jpg":
            assert fx.psnr(original, fx.decode(data)) >= fx.JPEG_MIN_PSNR_DB
        else:
            assert np.array_equal(fx.decode(data), original)


def test_a_jpeg_compressed_op_object_counts_as_a_jpeg_source(tmp_path):
    """An OP object received as DICOM with a JPEG Baseline transfer syntax (YBR colour):
    its pixels come out as RGB, and it is a JPEG source without LossyImageCompression."""
    import pydicom
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGBaseline8Bit

    inp, _ = _input(tmp_path)
    png = inp.cases[1].series[0].instances[0]
    ds = pydicom.dcmread(png.path)
    rgb = fx.dicom_pixels(png.path)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=95, subsampling=2)
    ds.PixelData = encapsulate([buf.getvalue()])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.PhotometricInterpretation = "YBR_FULL_422"
    del ds.LossyImageCompression
    path = tmp_path / "jpeg.dcm"
    ds.save_as(path, enforce_file_format=True)
    assert fx.header(str(path)).lossy
    assert fx.source_format(replace(png, path=str(path), source_format="PNG")) == "JPEG"
    pixels = fx.dicom_pixels(str(path))
    assert pixels.shape == rgb.shape and fx.psnr(rgb, pixels) > 30


def test_macular_oedema_ungradable_is_written_as_off_scale_and_listed_as_allowed(tmp_path):
    from annotation_server.projects.label_schemas import shipped

    inp, _ = _input(tmp_path, include_images=False)
    spec = next(i for i in shipped() if i["key"] == "fundus-dr")
    codes = [c.case_id for c in inp.cases]
    values = [
        {"dr_grade": 1, "dmo": "ungradable"},  # below the cut-off, oedema not gradable
        {"dr_grade": 3, "dmo": "ungradable"},  # referable by its grade alone
        {"dr_grade": "ungradable", "dmo": "ungradable"},
    ]
    derived = [None, True, None]
    inp = replace(
        inp,
        schema=spec,
        case_labels=dict(zip(codes, values, strict=True)),
        reference_labels={
            code: ReferenceLabelsRecord(code, 1, "auto-consensus", {"referable_dr": d}, {})
            for code, d in zip(codes, derived, strict=True)
        },
    )
    root = write_package(inp, tmp_path / "out")
    lines = (root / fx.GRADES_TABLE).read_text(encoding="utf-8-sig").splitlines()
    header = lines[0].split(",")
    rows = [dict(zip(header, r.split(","), strict=True)) for r in lines[1:]]
    assert [(r["dr_grade"], r["dmo"], r["referable_dr"]) for r in rows] == [
        ("1", "ungradable", ""),
        ("3", "ungradable", "true"),
        ("ungradable", "ungradable", ""),
    ]
    dictionary = (root / "dictionary/data_dictionary.csv").read_text(encoding="utf-8-sig")
    dmo_rows = [line for line in dictionary.splitlines() if ",dmo," in line]
    assert dmo_rows and all("absent;present;ungradable" in line for line in dmo_rows)
