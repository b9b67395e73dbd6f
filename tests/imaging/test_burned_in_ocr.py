"""The pixel text detector (deid/pixel_text.py): Tesseract on corners and borders,
Latin and Chinese, on the fixtures' burned-in variant and on text drawn with PIL."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

import fixtures
from annotation_server.imaging.deid import pixel_text

CJK_FONT = "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"


def _overlap(box: dict, truth: list[int]) -> bool:
    x0, y0, x1, y1 = truth
    return not (
        box["x"] > x1
        or box["y"] > y1
        or box["x"] + box["width"] <= x0
        or box["y"] + box["height"] <= y0
    )


def _covers(box: dict, truth: list[int], slack: int = 3) -> bool:
    x0, y0, x1, y1 = truth
    return (
        box["x"] <= x0 + slack
        and box["y"] <= y0 + slack
        and box["x"] + box["width"] >= x1 + 1 - slack
        and box["y"] + box["height"] >= y1 + 1 - slack
    )


@pytest.fixture(scope="module")
def ct_burned():
    datasets, truth = fixtures.build_ct_datasets(slices=5, seed=1, defect="burned-in-text")
    return datasets, truth["defect"]


def _with_text(values: np.ndarray, texts: list[tuple[tuple[int, int], str, int]]) -> np.ndarray:
    """`values` with each (position, text, size) drawn at the image's maximum."""
    img = Image.fromarray(values.astype(np.int32), mode="I")
    draw = ImageDraw.Draw(img)
    top = int(values.max())
    for (x, y), text, size in texts:
        draw.text((x, y), text, font=ImageFont.truetype(CJK_FONT, size), fill=top)
    return np.array(img)


def test_tesseract_with_chinese_and_english_is_installed():
    assert pixel_text.ocr_available(), "make test installs tesseract-ocr, -eng and -chi-sim"


def test_fixture_burned_in_slice_is_found_even_when_its_header_says_no(ct_burned):
    datasets, truth = ct_burned
    burned = datasets[truth["slice_index"]].copy()
    burned.BurnedInAnnotation = "NO"
    found = pixel_text.find_text_in_dataset(burned)
    assert found.has_text and found.ocr
    assert found.screened == ["top"]
    assert any(_overlap(b.as_dict(), truth["box"]) for b in found.boxes)
    # the suggested box covers the whole burned text, also the lines OCR misread
    assert any(_covers(b, truth["box"]) for b in found.suggested_boxes())
    assert found.reason() == "burned-in text found by OCR (top)"
    # the 5x7 LCD font reads poorly (digits come out approximate), its "ID" label does not
    assert "ID" in found.text.split(), found.text


def test_clean_slices_of_the_same_series_are_not_flagged_and_cost_no_ocr(ct_burned, monkeypatch):
    datasets, truth = ct_burned
    monkeypatch.setattr(
        pixel_text, "_ocr_words", lambda img: pytest.fail("OCR ran on a clean slice")
    )
    for i, ds in enumerate(datasets):
        if i != truth["slice_index"]:
            found = pixel_text.find_text_in_dataset(ds)
            assert not found.has_text and not found.screened and found.reason() is None


@pytest.mark.parametrize("photometric", ["MONOCHROME2", "MONOCHROME1"])
def test_radiograph_burned_in_variant_is_found_in_either_polarity(photometric):
    ds, truth = fixtures.build_xr_dataset(
        seed=3, size=512, defect="burned-in-text", photometric=photometric
    )
    ds.BurnedInAnnotation = "NO"
    found = pixel_text.find_text_in_dataset(ds)
    assert found.has_text
    assert any(_overlap(b.as_dict(), truth["defect"]["box"]) for b in found.boxes)
    clean, _ = fixtures.build_xr_dataset(seed=3, size=512, photometric=photometric)
    assert not pixel_text.find_text_in_dataset(clean).has_text


def test_latin_and_chinese_text_drawn_in_the_corners_is_read(ct_burned):
    datasets, truth = ct_burned
    clean = datasets[0].pixel_array
    values = _with_text(
        clean,
        [((8, 8), "ZHANG WEI ID 31415926", 20), ((330, 470), "王小明 2023-05-06", 22)],
    )
    found = pixel_text.find_text(pixel_text.display_values(values))
    assert set(found.screened) == {"top", "bottom"}
    assert "31415926" in found.text
    assert "王小明" in found.text
    bottom = [b for b in found.boxes if b.region == "bottom"]
    assert bottom and all(b.y >= 460 and b.x >= 320 for b in bottom)
    top = [b for b in found.boxes if b.region == "top"]
    assert top and all(b.y < 40 for b in top)


def test_chinese_text_alone_on_a_border_is_read(ct_burned):
    datasets, _ = ct_burned
    values = _with_text(datasets[1].pixel_array, [((4, 240), "患者王小明", 22)])
    found = pixel_text.find_text(pixel_text.display_values(values))
    assert found.has_text and found.screened == ["left"]
    assert "王小明" in found.text


def test_clean_images_are_not_flagged(ct_burned):
    datasets, truth = ct_burned
    assert not pixel_text.find_text_in_dataset(datasets[0]).has_text
    for seed in (1, 2):
        xr, _ = fixtures.build_xr_dataset(seed=seed, size=512)
        assert not pixel_text.find_text_in_dataset(xr).has_text


def test_stroke_screen_without_tesseract_still_holds_the_image_back(ct_burned):
    datasets, truth = ct_burned
    found = pixel_text.find_text_in_dataset(datasets[truth["slice_index"]], use_ocr=False)
    assert found.has_text and not found.ocr
    assert "OCR not available" in found.reason()
    assert _covers(found.boxes[0].as_dict(), truth["box"])
    assert not pixel_text.find_text_in_dataset(datasets[0], use_ocr=False).has_text


def test_a_failing_tesseract_holds_the_image_back(ct_burned, monkeypatch):
    datasets, truth = ct_burned

    def broken(img):
        raise RuntimeError("tesseract crashed")

    monkeypatch.setattr(pixel_text, "_ocr_words", broken)
    found = pixel_text.find_text_in_dataset(datasets[truth["slice_index"]])
    assert found.has_text and found.boxes[0].region == "top"
