"""Nodule candidates in a CT volume: blobs inside the lungs (NumPy + SciPy).

On the working grid (isotropic `SPACING_MM`, HU):

1. The lungs: voxels below -500 HU, in connected regions that do not touch
   the image's in-plane border (that air is outside the patient), with each
   slice's holes filled so nodules and vessels inside the lungs belong to it.
2. Blobs: the scale-normalised Laplacian of Gaussian (-sigma^2 * LoG, a
   Gaussian then the discrete Laplacian) of the volume clipped to a window,
   its maximum over `SIGMAS`, and the local maxima of that above
   `MIN_RESPONSE` inside the lungs. A sphere of radius r answers most at
   sigma = r / sqrt(3), so the winning scale also estimates the size. Two
   windows: LUNG_WINDOW (solid nodules and vessels stand out) and GGO_WINDOW
   (clipped at -450 HU, so ground glass is nearly as bright as a vessel and a
   ground-glass nodule beside one keeps its own maximum); a maximum within
   one voxel of one already kept is the same candidate.
3. Blobness: the Hessian of the Gaussian-smoothed volume at the winning
   scale, at the maximum. A sphere curves alike in all three directions, a
   vessel (a tube) hardly along its axis, so the ratio of the smallest to the
   largest eigenvalue magnitude (all three negative for a bright blob) keeps
   spheres (about 0.7-1 on the synthetic nodules) and drops most vessels
   (mostly below 0.3). Kept: ratio >= `MIN_BLOBNESS`.
4. At most `MAX_CANDIDATES`, ordered by blobness x response (highest first).

What is left (vessel crossings and bifurcations, bits of chest wall) is the
classifier's job.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SPACING_MM = 1.4
SIGMAS = (1.0, 1.6, 2.5, 3.6)  # voxels of the working grid
LUNG_WINDOW = (-1000.0, 100.0)  # HU clip before the blob filter
GGO_WINDOW = (-1000.0, -450.0)  # second pass: ground glass as bright as vessels
MIN_RESPONSE = 60.0  # HU-scaled LoG response
MAX_CANDIDATES = 300
PEAK_FOOTPRINT = 5  # voxels: one candidate per 7 mm neighbourhood
MIN_BLOBNESS = 0.3


@dataclass(frozen=True)
class Candidate:
    index: tuple[int, int, int]  # (slice, row, column) on the working grid
    response: float
    sigma: float  # winning scale, voxels
    blobness: float  # smallest / largest Hessian eigenvalue magnitude, 0..1

    @property
    def radius_mm(self) -> float:
        return float(self.sigma * np.sqrt(3.0) * SPACING_MM)


def lung_mask(hu: np.ndarray) -> np.ndarray:
    from scipy import ndimage as ndi

    air = hu < -500.0
    labels, _ = ndi.label(air)
    border = np.unique(
        np.concatenate(
            [labels[:, 0, :].ravel(), labels[:, -1, :].ravel()]
            + [labels[:, :, 0].ravel(), labels[:, :, -1].ravel()]
        )
    )
    mask = air & ~np.isin(labels, border[border > 0])
    in_plane = np.zeros((1, 3, 3), dtype=bool)
    in_plane[0] = True
    return ndi.binary_fill_holes(mask, structure=in_plane)


def blob_response(
    hu: np.ndarray, window: tuple[float, float] = LUNG_WINDOW
) -> tuple[np.ndarray, np.ndarray]:
    """(max over scales of -sigma^2 LoG, index of the winning scale)."""
    from scipy import ndimage as ndi

    v = np.clip(hu, *window).astype(np.float32)
    best = np.full(v.shape, -np.inf, dtype=np.float32)
    which = np.zeros(v.shape, dtype=np.uint8)
    for i, s in enumerate(SIGMAS):
        r = ndi.laplace(ndi.gaussian_filter(v, s, mode="nearest"), mode="nearest")
        r *= np.float32(-s * s)
        better = r > best
        best[better] = r[better]
        which[better] = i
    return best, which


def blobness(v: np.ndarray, index: tuple[int, int, int], sigma: float) -> float:
    """Smallest over largest eigenvalue magnitude of the Hessian at `index`
    (scale `sigma`); 0 unless all three curvatures say "bright blob"."""
    from scipy import ndimage as ndi

    r = int(np.ceil(3.0 * sigma)) + 2
    box = tuple(
        slice(max(0, c - r), min(n, c + r + 1)) for c, n in zip(index, v.shape, strict=True)
    )
    g = ndi.gaussian_filter(v[box], sigma, mode="nearest")
    c = [i - b.start for i, b in zip(index, box, strict=True)]
    if any(ci < 1 or ci > n - 2 for ci, n in zip(c, g.shape, strict=True)):
        return 0.0
    n = g[c[0] - 1 : c[0] + 2, c[1] - 1 : c[1] + 2, c[2] - 1 : c[2] + 2].astype(np.float64)
    h = np.empty((3, 3))
    centre = n[1, 1, 1]
    for a in range(3):
        plus = [1, 1, 1]
        minus = [1, 1, 1]
        plus[a], minus[a] = 2, 0
        h[a, a] = n[tuple(plus)] + n[tuple(minus)] - 2.0 * centre
        for b in range(a + 1, 3):
            pp, pm, mp, mm = ([1, 1, 1] for _ in range(4))
            pp[a], pp[b] = 2, 2
            pm[a], pm[b] = 2, 0
            mp[a], mp[b] = 0, 2
            mm[a], mm[b] = 0, 0
            h[a, b] = h[b, a] = (n[tuple(pp)] - n[tuple(pm)] - n[tuple(mp)] + n[tuple(mm)]) / 4.0
    e = np.linalg.eigvalsh(h)  # ascending: most negative first
    if e[2] >= 0.0:
        return 0.0
    return float(e[2] / e[0])


def find_candidates(
    hu: np.ndarray, *, limit: int = MAX_CANDIDATES, min_blobness: float = MIN_BLOBNESS
) -> list[Candidate]:
    """Candidates of a volume already on the working grid (HU), strongest first."""
    from scipy import ndimage as ndi

    mask = lung_mask(hu)
    if not mask.any():
        return []
    found: dict[tuple[int, int, int], Candidate] = {}
    taken = np.zeros(hu.shape, dtype=bool)  # within one voxel of a kept peak
    for window in (LUNG_WINDOW, GGO_WINDOW):
        response, which = blob_response(hu, window)
        peaks = (response == ndi.maximum_filter(response, size=PEAK_FOOTPRINT)) & mask
        peaks &= response >= MIN_RESPONSE
        idx = np.argwhere(peaks)
        values = response[peaks]
        v = np.clip(hu, *window).astype(np.float32)
        for i in range(len(values)):
            index = (int(idx[i, 0]), int(idx[i, 1]), int(idx[i, 2]))
            if taken[index]:
                continue
            sigma = float(SIGMAS[int(which[index])])
            b = blobness(v, index, sigma)
            if b >= min_blobness:
                found[index] = Candidate(index, float(values[i]), sigma, round(b, 4))
                taken[tuple(slice(max(0, c - 1), c + 2) for c in index)] = True
    out = sorted(found.values(), key=lambda c: (-c.blobness * c.response, c.index))
    return out[:limit]
