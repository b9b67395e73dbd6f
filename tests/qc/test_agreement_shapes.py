"""Shape agreement in mm on anisotropic grids, against brute force and SimpleITK."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from scipy.spatial.distance import cdist

from qc.agreement import shapes as shp

SPACING = (2.5, 0.7, 0.8)  # slice, row, column (mm)


def ellipsoid(shape, centre, radii_mm, spacing=SPACING):
    idx = np.indices(shape).astype(float)
    s = np.asarray(spacing)[:, None, None, None]
    c = np.asarray(centre, dtype=float)[:, None, None, None]
    r = np.asarray(radii_mm, dtype=float)[:, None, None, None]
    return (((idx - c) * s / r) ** 2).sum(axis=0) <= 1.0


A = ellipsoid((12, 40, 40), (6, 20, 20), (10, 8, 9))
B = ellipsoid((12, 40, 40), (6.4, 21, 19), (9, 8.5, 8))


def brute(a, b, spacing):
    pa = np.argwhere(shp.surface(a)) * spacing
    pb = np.argwhere(shp.surface(b)) * spacing
    d = cdist(pa, pb)
    return d.min(axis=1), d.min(axis=0)


def test_dice_and_iou_by_counting():
    inter = np.count_nonzero(A & B)
    assert shp.dice(A, B) == pytest.approx(2 * inter / (A.sum() + B.sum()))
    assert shp.iou(A, B) == pytest.approx(inter / np.count_nonzero(A | B))
    assert shp.dice(A, A) == 1.0


def test_surface_distances_match_brute_force_in_mm():
    d_ab, d_ba = brute(A, B, np.asarray(SPACING))
    got = shp.compare(A, B, SPACING, tolerance_mm=1.0)
    assert got["hd95"] == pytest.approx(
        max(np.percentile(d_ab, 95), np.percentile(d_ba, 95)), abs=1e-9
    )
    assert got["assd"] == pytest.approx(
        (d_ab.sum() + d_ba.sum()) / (len(d_ab) + len(d_ba)), abs=1e-9
    )
    close = (d_ab <= 1.0).sum() + (d_ba <= 1.0).sum()
    assert got["nsd"] == pytest.approx(close / (len(d_ab) + len(d_ba)), abs=1e-12)


def test_anisotropic_spacing_changes_distances():
    iso = shp.hd95(A, B, (1.0, 1.0, 1.0))
    aniso = shp.hd95(A, B, SPACING)
    assert iso != pytest.approx(aniso)


def test_hausdorff_matches_simpleitk_on_the_same_surfaces():
    sa, sb = shp.surface(A), shp.surface(B)
    images = []
    for m in (sa, sb):
        img = sitk.GetImageFromArray(m.astype(np.uint8))
        img.SetSpacing(tuple(reversed(SPACING)))
        images.append(img)
    f = sitk.HausdorffDistanceImageFilter()
    f.Execute(*images)
    assert shp.hausdorff(A, B, SPACING) == pytest.approx(f.GetHausdorffDistance(), abs=1e-9)


def test_empty_masks():
    empty = np.zeros_like(A)
    assert shp.compare(empty, empty)["dice"] == 1.0
    one = shp.compare(A, empty)
    assert one["dice"] == 0.0 and np.isnan(one["hd95"]) and one["nsd"] == 0.0


def test_staple_em_matches_simpleitk():
    rng = np.random.default_rng(0)
    masks = []
    for k in range(4):
        m = A.copy()
        m ^= rng.random(A.shape) < 0.02 * (k + 1)
        masks.append(m)
    ours = shp.staple_em(masks)
    theirs = shp.staple(masks, SPACING)
    assert np.allclose(ours["sensitivity"], theirs["sensitivity"], atol=1e-5)
    assert np.allclose(ours["specificity"], theirs["specificity"], atol=1e-5)
    assert np.abs(ours["probability"] - theirs["probability"]).max() < 1e-4
    # the noisiest reader is the least sensitive or specific
    assert ours["specificity"][3] < ours["specificity"][0]
