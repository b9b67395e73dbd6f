"""imaging.pixels as plain functions: decoding, rescale, wire types, records, windows."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.pixels import apply_modality_lut
from pydicom.sequence import Sequence

import fixtures
from annotation_server.imaging import pixels
from tests.real_dicom import real_dicom_files

REAL_FILES = real_dicom_files()


def _functional_rescale(ds: pydicom.Dataset, frame: int) -> tuple[float, float] | None:
    for groups, index in (
        ("PerFrameFunctionalGroupsSequence", frame),
        ("SharedFunctionalGroupsSequence", 0),
    ):
        seq = ds.get(groups)
        if seq and index < len(seq) and seq[index].get("PixelValueTransformationSequence"):
            item = seq[index].PixelValueTransformationSequence[0]
            if "RescaleSlope" in item and "RescaleIntercept" in item:
                return float(item.RescaleSlope), float(item.RescaleIntercept)
    return None


def expected_frames(path: Path) -> dict[int, np.ndarray] | Exception | None:
    """What pydicom says each frame is: pixel_array, then apply_modality_lut for
    grayscale (enhanced multi-frame objects, whose rescale lives in functional groups
    that apply_modality_lut does not read, get that frame's slope/intercept).
    None: no pixel data. An exception: pydicom cannot decode the pixels."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(path)
        if not pixels.has_pixels(ds):
            return None
        try:
            arr = ds.pixel_array
        except Exception as exc:  # noqa: BLE001
            return exc
    n = pixels.number_of_frames(ds)
    out = {}
    for f in range(n):
        a = arr if n == 1 else arr[f]
        if a.ndim == 2 and ds.get("PhotometricInterpretation") != "PALETTE COLOR":
            fg = _functional_rescale(ds, f)
            if ds.get("ModalityLUTSequence") or "RescaleSlope" in ds or fg is None:
                a = apply_modality_lut(a, ds)
            else:
                a = a.astype(np.float64) * fg[0] + fg[1]
        out[f] = a
    return out


def assert_same_values(got: np.ndarray, dtype: str, expected: np.ndarray, label: str) -> None:
    assert got.dtype.byteorder in ("<", "|", "=") and got.dtype.name == dtype, label
    assert got.shape == expected.shape, label
    if dtype == "int16":
        assert np.array_equal(got.astype(np.float64), expected.astype(np.float64)), label
    else:  # the float32/float64/unsigned value pydicom's value rounds to, exactly
        assert np.array_equal(got, expected.astype(got.dtype)), label


@pytest.mark.parametrize("path", REAL_FILES, ids=lambda p: p.name)
def test_real_file_values_equal_pydicom_after_modality_rescale(path):
    expected = expected_frames(path)
    ds = pixels.read_dataset(path.read_bytes())
    if expected is None:
        with pytest.raises(pixels.PixelError) as info:
            pixels.decode_frames(ds)
        assert info.value.code == "no_pixel_data"
        return
    if isinstance(expected, Exception):
        with pytest.raises(pixels.PixelError) as info:
            pixels.decode_frames(ds)
        assert info.value.code == "undecodable"
        assert info.value.transfer_syntax in str(info.value)
        return
    frames = pixels.decode_frames(ds)
    assert sorted(frames) == sorted(expected)
    for f, frame in frames.items():
        assert_same_values(frame.values, frame.dtype, expected[f], f"{path.name} frame {f}")
        if frame.rgb:
            assert frame.photometric == "RGB" and frame.header["samples_per_pixel"] == 3
    last = max(frames)
    single = pixels.decode_frame(ds, last)  # one frame alone decodes the same
    assert np.array_equal(single.values, frames[last].values)
    png = pixels.render_png(ds, single, size=32)
    assert max(Image.open(io.BytesIO(png)).size) <= 32


def test_real_files_cover_compressed_multiframe_colour_and_undecodable():
    outcomes = {"decoded": 0, "no_pixels": 0, "undecodable": 0}
    for path in REAL_FILES:
        expected = expected_frames(path)
        key = (
            "no_pixels"
            if expected is None
            else "undecodable"
            if isinstance(expected, Exception)
            else "decoded"
        )
        outcomes[key] += 1
    assert outcomes["decoded"] >= 150, outcomes
    assert outcomes["undecodable"] >= 1, outcomes


def test_int16_when_integers_fit_else_float32():
    assert pixels.to_wire(np.array([-1024.0, 3071.0]))[1] == "int16"
    assert pixels.to_wire(np.array([0, 65535], dtype=np.uint16))[1] == "float32"
    assert pixels.to_wire(np.array([0.5, 1.0]))[1] == "float32"
    assert pixels.to_wire(np.array([0, 2**30], dtype=np.uint32))[1] == "float64"
    values, dtype = pixels.to_wire(np.array([[1, 2]], dtype=">i2"))
    assert dtype == "int16" and values.dtype.str == "<i2"


def test_rgb_is_sent_as_uint8_rgb():
    arr = np.zeros((4, 5, 3), dtype=np.uint8)
    values, dtype = pixels.to_wire(arr, rgb=True)
    assert dtype == "uint8" and values.shape == (4, 5, 3)


def test_records_are_8_byte_aligned_and_round_trip():
    body = b"".join(
        pixels.pack_record({"rows": 1, "columns": n, "dtype": "int16"}, b"\1\0" * n)
        for n in (1, 3, 4)
    )
    offset, records = 0, list(pixels.iter_records(body))
    assert [h["columns"] for h, _ in records] == [1, 3, 4]
    assert [p.tolist() for _, p in records] == [[[1]], [[1, 1, 1]], [[1, 1, 1, 1]]]
    while offset < len(body):
        n = int.from_bytes(body[offset : offset + 4], "little")
        assert (4 + n) % 8 == 0 and offset % 8 == 0
        header = pixels.iter_records(body[offset:]).__next__()[0]
        offset += 4 + n + header["nbytes"] + (-header["nbytes"]) % 8
    assert offset == len(body)


def test_ct_header_has_file_presets_then_modality_defaults_and_int16_hu():
    datasets, _ = fixtures.build_ct_datasets(slices=2, seed=1)
    ds = datasets[0]
    frame = pixels.decode_frame(ds)
    header = frame.header
    assert frame.dtype == "int16"
    expected = apply_modality_lut(ds.pixel_array, ds)
    assert np.array_equal(frame.values, expected)
    names = [(p["source"], p["name"]) for p in header["window_presets"]]
    assert ("modality", "lung") in names and ("modality", "mediastinum") in names
    assert ("modality", "bone") in names and ("modality", "brain") in names
    file_presets = pixels.file_presets(ds)
    assert header["window_presets"][: len(file_presets)] == file_presets
    if file_presets:
        first = file_presets[0]
        assert header["default_window"] == {"center": first["center"], "width": first["width"]}
    assert header["rescale"] == {
        "slope": float(ds.RescaleSlope),
        "intercept": float(ds.RescaleIntercept),
    }
    assert header["pixel_spacing"] == [float(v) for v in ds.PixelSpacing]


def test_ct_without_file_presets_defaults_to_a_ct_preset():
    datasets, _ = fixtures.build_ct_datasets(slices=1, seed=1)
    ds = datasets[0]
    for keyword in ("WindowCenter", "WindowWidth", "WindowCenterWidthExplanation"):
        if keyword in ds:
            delattr(ds, keyword)
    header = pixels.decode_frame(ds).header
    assert header["window_presets"][0]["source"] == "modality"
    lung = pixels.MODALITY_PRESETS["CT"][0]
    assert header["default_window"] == {"center": lung["center"], "width": lung["width"]}


def test_no_presets_and_no_modality_defaults_use_the_histogram_inside_the_body():
    # A dark background (a quarter of the image at 100) around a body of 1000..3000:
    # the window spans the body's 0.5-99.5 percentiles, not the background.
    rng = np.random.default_rng(3)
    values = rng.integers(1000, 3001, size=(256, 256)).astype(np.int16)
    values[:, :64] = 100
    window = pixels.default_window([], values)
    lo, hi = window["center"] - window["width"] / 2, window["center"] + window["width"] / 2
    assert 1000 <= lo < 1030 and 2970 < hi <= 3000
    # MONOCHROME1: the background is the high end.
    window = pixels.default_window([], 4000 - values, dark_high=True)
    lo, hi = window["center"] - window["width"] / 2, window["center"] + window["width"] / 2
    assert 1000 <= lo < 1030 and 2970 < hi <= 3000


def test_a_file_window_spanning_the_stored_range_gives_way_to_the_histogram():
    ds, _ = fixtures.build_xr_dataset(seed=2, size=256)
    assert (float(ds.WindowCenter), float(ds.WindowWidth), ds.BitsStored) == (2048.0, 4096.0, 12)
    header = pixels.decode_frame(ds).header
    assert header["window_source"] == "histogram"
    assert header["default_window"]["width"] < 0.8 * 4096
    assert [p["name"] for p in header["window_presets"]] == ["file 1"]  # still offered
    ds.WindowCenter, ds.WindowWidth = "2100", "1800"
    header = pixels.decode_frame(ds).header
    assert header["window_source"] == "file"
    assert header["default_window"] == {"center": 2100.0, "width": 1800.0}


def test_a_voi_lut_gives_the_default_window_its_input_range():
    ds, _ = fixtures.build_xr_dataset(seed=2, size=128)
    del ds.WindowCenter, ds.WindowWidth
    item = Dataset()
    item.LUTDescriptor = [1024, 1500, 12]
    item.LUTExplanation = "NORMAL"
    item.LUTData = list(range(1024))
    ds.VOILUTSequence = Sequence([item])
    header = pixels.decode_frame(ds).header
    assert header["default_window"] == {"center": 2012.0, "width": 1024.0}
    assert header["window_source"] == "file"
    assert header["window_presets"][0]["name"] == "NORMAL"


def test_view_markers_come_from_the_header():
    ds, _ = fixtures.build_xr_dataset(seed=2, size=64)
    assert pixels.view_markers(ds) == {
        "position": "PA",
        "laterality": "",
        "orientation": ["L", "F"],
    }
    ds.ViewPosition, ds.ImageLaterality, ds.PatientOrientation = "AP", "R", ["P", "F"]
    assert pixels.view_markers(ds) == {
        "position": "AP",
        "laterality": "R",
        "orientation": ["P", "F"],
    }
    del ds.ViewPosition, ds.ImageLaterality, ds.PatientOrientation
    assert pixels.view_markers(ds) is None


def test_a_large_first_frame_streams_after_a_reduced_rendition_of_itself():
    ds, _ = fixtures.build_xr_dataset(seed=2, size=1600)
    frame = pixels.decode_frame(ds)
    record = pixels.preview_record(frame, {"index": 0})
    ((header, small),) = list(pixels.iter_records(record))
    k = header["preview"]["factor"]
    assert k >= 2 and header["preview"]["rows"] == 1600 and header["preview"]["columns"] == 1600
    assert small.shape == (1600 // k, 1600 // k) and small.dtype == frame.values.dtype
    assert header["default_window"] == frame.header["default_window"]
    block = frame.values[:k, :k].astype(float).mean()
    assert abs(int(small[0, 0]) - block) <= 0.5
    assert (
        pixels.preview_record(pixels.decode_frame(fixtures.build_xr_dataset(size=512)[0])) is None
    )


def test_monochrome1_is_inverted_when_rendered():
    ds, _ = fixtures.build_xr_dataset(seed=1, size=64, photometric="MONOCHROME1")
    frame = pixels.decode_frame(ds)
    assert frame.header["photometric"] == "MONOCHROME1" and frame.header["invert"]
    lo = float(frame.values.min())
    image = pixels.render_image(ds, frame, center=lo + 50, width=100)
    darkest = np.unravel_index(np.argmin(frame.values), frame.values.shape)
    assert np.asarray(image)[darkest] == 255  # lowest value shows white


def test_window_maps_linearly_to_8_bits():
    out = pixels.window_uint8(np.array([-1000, 40, 1000]), 40, 400)
    assert out.tolist() == [0, 127, 255]
    assert pixels.window_uint8(np.array([-1000]), 40, 400, invert=True).tolist() == [255]


def test_zero_pixel_spacing_is_reported_as_null():
    ds = pydicom.Dataset()
    ds.PixelSpacing = [0, 0]
    assert pixels.pixel_spacing(ds) is None
    ds.PixelSpacing = [0.5, 0.6]
    assert pixels.pixel_spacing(ds) == [0.5, 0.6]
    rg1 = [p for p in REAL_FILES if p.name.startswith("RG1_")]
    assert rg1, "pydicom-data's RG1 files are expected"
    frame = pixels.decode_frame(pixels.read_dataset(rg1[0].read_bytes()))
    assert frame.header["pixel_spacing"] is None
    assert frame.header["photometric"] == "MONOCHROME1"


def test_raw_frame_bytes_are_little_endian_stored_values():
    path = next(p for p in REAL_FILES if p.name == "MR_small_bigendian.dcm")
    ds = pixels.read_dataset(path.read_bytes())
    raw = pixels.raw_frame_bytes(ds, 0)
    assert np.array_equal(np.frombuffer(raw, "<i2").reshape(ds.Rows, ds.Columns), ds.pixel_array)
