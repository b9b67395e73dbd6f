"""RGB photographs for the viewer's tests: a PNG of flat colour blocks (so that a
point's colour survives the viewer's scaling) through photo_to_dicom, with either
PlanarConfiguration, indexed like any instance."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset

from annotation_server.imaging.photo.convert import photo_to_dicom

BLOCKS = 8  # blocks per side


def block_photo(rows: int, columns: int, seed: int = 0) -> np.ndarray:
    """rows x columns x 3 uint8: BLOCKS x BLOCKS flat blocks of distinct colours
    (every channel different from the others, so that a channel mix-up shows)."""
    rng = np.random.default_rng(seed)
    colours = rng.integers(10, 246, size=(BLOCKS, BLOCKS, 3), dtype=np.uint8)
    colours[..., 1] = (colours[..., 0].astype(int) + 97) % 236 + 10  # green apart from red
    ri = np.minimum(np.arange(rows) * BLOCKS // rows, BLOCKS - 1)
    ci = np.minimum(np.arange(columns) * BLOCKS // columns, BLOCKS - 1)
    return np.ascontiguousarray(colours[ri][:, ci])


def png_bytes(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def photo_dataset(
    pixels: np.ndarray, *, laterality: str = "OD", planar: int = 0, study_uid: str | None = None
) -> Dataset:
    """An Ophthalmic Photography dataset of `pixels`; planar 1 stores the colour
    planes one after the other (R plane, G plane, B plane)."""
    ds = photo_to_dicom(
        png_bytes(pixels),
        laterality=laterality,
        patient_id="PSEUDO-1",
        study_id="VISIT-1",
        study_uid=study_uid,
    )
    if planar:
        ds.PlanarConfiguration = 1
        ds.PixelData = np.ascontiguousarray(pixels.transpose(2, 0, 1)).tobytes()
    return ds
