"""nnU-Net v2 raw dataset: NIfTI images and labels plus dataset.json.

`annotations/nnunet/Dataset<ID>_<name>/` with imagesTr/<case>_0000.nii.gz and
labelsTr/<case>.nii.gz for the train and validation splits, imagesTs and
labelsTs for the test splits. Labels are the current scored reference
findings' masks, one integer per finding type (background 0), on the image's
grid; NIfTI geometry (spacing, origin, direction) comes from the DICOM series
(LPS, as SimpleITK keeps it). dataset.json has the fields nnU-Net v2 requires:
channel_names, labels, numTraining, file_ending.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from export.files import dumps
from export.model import PackageInput
from export.volume import dense, finding_mask, grid, read_volume

TEST_SPLITS = frozenset({"test", "sequestered-test"})


def finding_types(inp: PackageInput) -> list[str]:
    definition = inp.schema.get("definition", inp.schema)
    keys = [t["key"] for t in definition.get("finding_types", [])]
    for ref in inp.reference:
        if ref.finding_type not in keys:
            keys.append(ref.finding_type)
    return keys


def folder_name(inp: PackageInput) -> str:
    name = re.sub(r"[^A-Za-z0-9]+", "", inp.dataset_id.title()) or "RefSet"
    return f"Dataset{500 + sum(map(ord, inp.dataset_id)) % 500:03d}_{name}"


def _image(array: np.ndarray, g) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((g.spacing[2], g.spacing[1], g.spacing[0]))
    image.SetOrigin(tuple(float(v) for v in g.origin))
    direction = np.stack([g.row_dir, g.col_dir, g.normal], axis=1)
    image.SetDirection(tuple(float(v) for v in direction.ravel()))
    return image


def _nifti_bytes(image: sitk.Image) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.nii.gz"
        sitk.WriteImage(image, str(path), useCompression=True)
        return path.read_bytes()


def write(out, inp: PackageInput, prefix: str = "", progress=None) -> None:
    base = f"{prefix}{folder_name(inp)}/"
    types = finding_types(inp)
    label_of = {t: i for i, t in enumerate(types, start=1)}
    refs: dict[str, list] = {}
    for ref in inp.reference:
        if not ref.excluded and ref.geometry:
            refs.setdefault(ref.series_uid, []).append(ref)
    training = 0
    for case in sorted(inp.cases, key=lambda c: c.case_id):
        if case.retired or not case.series:
            continue
        series = case.series[0]
        g = grid(series)
        volume = read_volume(series)
        labels = np.zeros(volume.shape, dtype=np.uint8)
        for ref in sorted(refs.get(series.series_uid, []), key=lambda r: r.ref_finding_id):
            mask = finding_mask(ref.geometry)
            if mask is not None:
                labels[dense(mask, volume.shape)] = label_of[ref.finding_type]
        test = case.split in TEST_SPLITS
        images, label_dir = ("imagesTs", "labelsTs") if test else ("imagesTr", "labelsTr")
        training += 0 if test else 1
        out.write_bytes(
            f"{base}{images}/{case.case_id}_0000.nii.gz", _nifti_bytes(_image(volume, g))
        )
        out.write_bytes(f"{base}{label_dir}/{case.case_id}.nii.gz", _nifti_bytes(_image(labels, g)))
        if progress:
            progress()
    dataset = {
        "channel_names": {"0": inp.modality or "CT"},
        "labels": {"background": 0, **label_of},
        "numTraining": training,
        "file_ending": ".nii.gz",
        "name": inp.dataset_id,
        "description": f"{inp.title} v{inp.version} (RefSet reference standard)",
        "reference": inp.tool_version,
        "licence": "see README.md",
        "release": inp.version,
    }
    out.write_text(f"{base}dataset.json", dumps(dataset))
