"""Long and short axis, volume and HU from drawn outlines (qc.measurements),
checked against the synthetic CT generator's planted nodules and against shapes
whose measurements are known exactly.

The nodule outlines are traced from the ground-truth mask (the voxels whose
centres lie inside the planted sphere) the way a reader follows an edge: the
mask's half-level line, found along 180 rays from its centroid (the nodules are
spheres, so every ray leaves the mask once).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

from fixtures.ct import plan_ct, render_slice_hu
from qc.measurements import Spacing, long_axis, measure, short_axis, values_inside

SEEDS = range(6)
PLAN = {"slices": 60, "matrix": 512, "nodules": 3}  # 0.7 mm pixels, 1.25 mm slices


def sphere_mask(truth: dict, nodule: dict, k: int) -> np.ndarray:
    """The ground-truth mask of a planted nodule on slice k: pixel centres inside its sphere."""
    geometry = truth["geometry"]
    row_mm, col_mm = geometry["pixel_spacing_mm"]
    x0, y0, z = next(f for f in truth["files"] if f["slice_index"] == k)["image_position_patient"]
    rows, cols = np.mgrid[0 : geometry["rows"], 0 : geometry["columns"]]
    cx, cy, cz = nodule["centre_mm"]
    dist2 = (x0 + cols * col_mm - cx) ** 2 + (y0 + rows * row_mm - cy) ** 2 + (z - cz) ** 2
    return dist2 <= (nodule["diameter_mm"] / 2.0) ** 2


def traced(mask: np.ndarray, rays: int = 180) -> list[list[float]]:
    level = mask.astype(float)
    rr, cc = np.nonzero(mask)
    r0, c0 = rr.mean(), cc.mean()
    radii = np.arange(0.0, 80.0, 0.02)
    points = []
    for angle in np.linspace(0.0, 2 * math.pi, rays, endpoint=False):
        rows, cols = r0 + radii * math.sin(angle), c0 + radii * math.cos(angle)
        along = ndimage.map_coordinates(level, [rows, cols], order=1, mode="constant")
        out = int(np.nonzero(along < 0.5)[0][0])
        points.append([float(cols[out]), float(rows[out])])
    return points


def nodule_geometry(truth: dict, nodule: dict) -> dict:
    """Outlines traced on every slice the planted sphere covers."""
    shapes = []
    for k in range(len(truth["files"])):
        mask = sphere_mask(truth, nodule, k)
        if mask.sum() >= 3:
            shapes.append({"slice_index": k, "points": traced(mask)})
    return {"kind": "contour", "shapes": shapes}


def _spacing(plan) -> Spacing:
    g = plan.truth["geometry"]
    return Spacing(*g["pixel_spacing_mm"], g["spacing_between_slices_mm"])


@pytest.fixture(scope="module")
def planted():
    out = []
    for seed in SEEDS:
        plan = plan_ct(seed=seed, **PLAN)
        for nodule in plan.truth["nodules"]:
            out.append((plan, nodule, nodule_geometry(plan.truth, nodule)))
    return out


def test_axes_from_a_traced_contour_are_within_1_mm_of_the_planted_diameter(planted):
    errors = []
    for plan, nodule, geometry in planted:
        m = measure(geometry, _spacing(plan))
        assert m["units"] == {"length": "mm", "area": "mm²", "volume": "mm³"}
        widest = sphere_mask(plan.truth, nodule, nodule["centre_voxel"][2]).sum()
        assert sphere_mask(plan.truth, nodule, m["slice_index"]).sum() == widest  # (or a tie)
        assert m["axes_from"] == "contour"
        errors += [m["long_axis"] - nodule["diameter_mm"], m["short_axis"] - nodule["diameter_mm"]]
    assert len(errors) >= 2 * 3 * len(SEEDS) - 2
    assert max(abs(e) for e in errors) <= 1.0, errors


def test_volume_from_the_contours_across_slices_is_the_spheres(planted):
    for plan, nodule, geometry in planted:
        m = measure(geometry, _spacing(plan))
        sphere = math.pi / 6 * nodule["diameter_mm"] ** 3
        assert m["slices"] == len(geometry["shapes"])
        assert m["volume"] == pytest.approx(sphere, rel=0.12), nodule


def test_hu_inside_a_solid_nodule_matches_its_planted_density(planted):
    plan, nodule, geometry = next(p for p in planted if p[1]["type"] == "solid")
    k = nodule["centre_voxel"][2]
    central = {
        "kind": "contour",
        "shapes": [s for s in geometry["shapes"] if s["slice_index"] == k],
    }
    image = render_slice_hu(plan, plan.slices[k])
    hu = values_inside(central, lambda i: image if i == k else None)
    assert hu["voxels"] > 20
    # The rim blends into lung (-850 HU) over about a pixel: the mean sits a little below.
    assert nodule["centre_hu"] - 150 < hu["mean"] < nodule["centre_hu"] + 15
    assert hu["max"] >= nodule["centre_hu"]


def test_anisotropic_pixels_measure_in_mm():
    # 40 x 10 pixels at 0.25 mm (columns) x 1.0 mm (rows): a 10 mm circle.
    g = {"kind": "ellipse", "shapes": [{"slice_index": 0, "points": [[10, 20], [50, 30]]}]}
    m = measure(g, Spacing(row_mm=1.0, col_mm=0.25, slice_mm=None))
    assert m["long_axis"] == pytest.approx(10.0, abs=0.01)
    assert m["short_axis"] == pytest.approx(10.0, abs=0.01)
    assert m["area"] == pytest.approx(math.pi * 25, rel=1e-3)
    assert m["volume"] is None and m["units"]["volume"] is None  # one image: no volume


@pytest.mark.parametrize("degrees", [0, 17, 45, 90, 133])
def test_a_rotated_ellipse_gives_its_two_diameters_with_the_short_one_perpendicular(degrees):
    t = np.linspace(0, 2 * math.pi, 720, endpoint=False)
    a, b, th = 12.0, 5.0, math.radians(degrees)
    x, y = a * np.cos(t), b * np.sin(t)
    pts = np.column_stack(
        [100 + x * math.cos(th) - y * math.sin(th), 80 + x * math.sin(th) + y * math.cos(th)]
    )
    g = {"kind": "polygon", "shapes": [{"slice_index": 3, "points": pts.tolist()}]}
    m = measure(g, Spacing(1.0, 1.0, 2.0))
    assert m["long_axis"] == pytest.approx(2 * a, abs=0.01)
    assert m["short_axis"] == pytest.approx(2 * b, abs=0.01)
    (p, q), (r, s) = np.asarray(m["long_axis_line"]), np.asarray(m["short_axis_line"])
    cosine = np.dot(q - p, s - r) / (np.linalg.norm(q - p) * np.linalg.norm(s - r))
    assert abs(cosine) < 1e-4  # the ends are rounded to 0.001 pixel


def test_the_short_axis_of_an_l_shape_is_its_longest_perpendicular_extent():
    xy = np.array([[0, 0], [10, 0], [10, 2], [2, 2], [2, 6], [0, 6]], dtype=float)
    length, a, b = long_axis(xy)
    assert length == pytest.approx(math.hypot(10, 6))
    width, c, d = short_axis(xy, a, b)
    # Brute force: extents across 20,000 perpendicular lines.
    u_dir = (b - a) / length
    n_dir = np.array([-u_dir[1], u_dir[0]])
    best = 0.0
    closed = np.vstack([xy, xy[:1]])
    for t in np.linspace(0, length, 20_000):
        hits = []
        for p, q in zip(closed[:-1], closed[1:], strict=True):
            up, uq = (p - a) @ u_dir - t, (q - a) @ u_dir - t
            if up * uq <= 0 and up != uq:
                w = up / (up - uq)
                hits.append(((p + w * (q - p)) - a) @ n_dir)
        if hits:
            best = max(best, max(hits) - min(hits))
    assert width == pytest.approx(best, abs=1e-3)
    assert abs(np.dot(d - c, b - a)) < 1e-9


def test_axes_drawn_by_the_reader_override_the_contours():
    g = {
        "kind": "ellipse",
        "shapes": [{"slice_index": 0, "points": [[0, 0], [20, 10]]}],
        "axes": {"slice_index": 0, "long": [[0, 5], [18, 5]], "short": [[10, 0], [10, 9]]},
    }
    m = measure(g, Spacing(0.5, 0.5, 1.0))
    assert m["axes_from"] == "reader"
    assert (m["long_axis"], m["short_axis"]) == (9.0, 4.5)
    assert (m["contour_long_axis"], m["contour_short_axis"]) == (10.0, 5.0)
    assert m["mean_diameter"] == 6.75
    g["axes"]["short"] = None  # long drawn, short still to come
    m = measure(g, Spacing(0.5, 0.5, 1.0))
    assert (m["long_axis"], m["short_axis"], m["mean_diameter"]) == (9.0, None, None)


def test_without_pixel_spacing_lengths_are_in_pixels():
    g = {"kind": "box", "shapes": [{"slice_index": 0, "points": [[0, 0], [30, 40]]}]}
    m = measure(g, Spacing(None, None, None))
    assert m["units"] == {"length": "px", "area": "px²", "volume": None}
    assert m["long_axis"] == 50.0
    assert m["area"] == 1200.0


@pytest.mark.parametrize("kind,points", [("point", [[1, 1]]), ("line", [[0, 0], [5, 5]])])
def test_marks_without_area_have_no_measurements(kind, points):
    assert (
        measure({"kind": kind, "shapes": [{"slice_index": 0, "points": points}]}, Spacing(1, 1, 1))
        is None
    )


def test_values_inside_skip_unreadable_slices_and_the_image_edge():
    g = {
        "kind": "box",
        "shapes": [
            {"slice_index": 0, "points": [[-2, -2], [1, 1]]},
            {"slice_index": 1, "points": [[0, 0], [1, 1]]},
        ],
    }
    image = np.arange(16, dtype=float).reshape(4, 4)
    hu = values_inside(g, lambda i: image if i == 0 else None)
    assert hu == {"mean": 2.5, "max": 5.0, "voxels": 4}  # pixels (0,0), (0,1), (1,0), (1,1)
    assert values_inside(g, lambda i: None) is None


def test_values_inside_refuse_an_outline_far_beyond_the_image():
    g = {"kind": "box", "shapes": [{"slice_index": 0, "points": [[0, 0], [1e6, 1e6]]}]}
    image = np.zeros((4, 4))
    assert values_inside(g, lambda i: image, image_size=(4, 4)) is None
