"""QC profiles: which rules run and with which thresholds (loadable from JSON)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

CROSS_SECTIONAL = ("CT", "MR", "PT")
RADIOGRAPH = ("CR", "DX")
PHOTOGRAPH = ("OP", "XC")  # ophthalmic photography, visible-light photography

# Body parts with their own defaults. A project's free-text body part is mapped onto
# one of these by `region_of` (DICOM BodyPartExamined terms, English and Chinese);
# anything else gets the modality's generic defaults, which never require a part.
REGIONS = ("chest", "abdomen", "head", "generic")
_REGION_TERMS = {
    "chest": ("CHEST", "THORAX", "LUNG", "LUNGS", "胸", "胸部", "肺"),
    "abdomen": ("ABDOMEN", "ABDOMENPELVIS", "PELVIS", "LIVER", "KIDNEY", "腹", "腹部", "盆腔"),
    "head": ("HEAD", "BRAIN", "SKULL", "HEADNECK", "头", "头部", "颅脑", "脑"),
}
# What the header rule accepts as the same body part (BodyPartExamined values).
REGION_SYNONYMS = {
    "chest": ("CHEST", "THORAX", "LUNG", "LUNGS", "胸部", "CHEST_TO_ABDOMEN", "CHESTABDOMEN"),
    "abdomen": ("ABDOMEN", "ABDOMENPELVIS", "ABDOMEN_PELVIS", "PELVIS", "LIVER", "KIDNEY", "腹部"),
    "head": ("HEAD", "BRAIN", "SKULL", "HEADNECK", "HEAD_NECK", "头部", "颅脑"),
}
# The unit of each numeric threshold (the QC profile form shows them); "" = a count
# or a ratio without unit.
UNITS = {
    "max_slice_thickness_mm": "mm",
    "fail_slice_thickness_mm": "mm",
    "min_slices": "",
    "max_slices": "",
    "gap_factor": "×",
    "duplicate_tolerance_mm": "mm",
    "max_spacing_deviation": "ratio",
    "fail_spacing_deviation": "ratio",
    "orientation_tolerance": "",
    "pixel_spacing_min_mm": "mm",
    "pixel_spacing_max_mm": "mm",
    "air_hu": "HU",
    "soft_tissue_hu": "HU",
    "hu_warn_tolerance": "HU",
    "hu_fail_tolerance": "HU",
    "max_noise_hu": "HU",
    "fail_noise_hu": "HU",
    "max_truncation_fraction": "ratio",
    "fail_truncation_fraction": "ratio",
    "max_metal_fraction": "ratio",
    "fail_metal_fraction": "ratio",
    "metal_hu": "HU",
    "max_clipped_fraction": "ratio",
    "min_mean_display": "ratio",
    "max_mean_display": "ratio",
    "min_dynamic_range": "ratio",
    "max_asymmetry": "ratio",
    "max_foreign_fraction": "ratio",
    "text_min_rows": "",
    "photo_min_sharpness": "",
    "photo_fail_sharpness": "",
    "photo_max_clipped_fraction": "ratio",
    "photo_max_mean_luma": "",
    "photo_min_mean_luma": "",
    "photo_max_dark_fraction": "ratio",
    "photo_min_fov_roundness": "ratio",
    "photo_min_fov_diameter": "ratio",
    "photo_max_fov_offset": "ratio",
    "photo_min_fov_inside": "ratio",
    "photo_min_side_px": "px",
    "photo_fail_side_px": "px",
    "photo_min_colour_spread": "",
}
# Which thresholds matter for which modalities ("" = every modality).
THRESHOLD_GROUPS = {
    "geometry": (
        CROSS_SECTIONAL,
        (
            "max_slice_thickness_mm",
            "fail_slice_thickness_mm",
            "min_slices",
            "max_slices",
            "gap_factor",
            "duplicate_tolerance_mm",
            "max_spacing_deviation",
            "fail_spacing_deviation",
            "orientation_tolerance",
        ),
    ),
    "pixel_spacing": ((), ("pixel_spacing_min_mm", "pixel_spacing_max_mm")),
    "ct_pixels": (
        ("CT",),
        (
            "air_hu",
            "soft_tissue_hu",
            "hu_warn_tolerance",
            "hu_fail_tolerance",
            "max_noise_hu",
            "fail_noise_hu",
            "max_truncation_fraction",
            "fail_truncation_fraction",
            "max_metal_fraction",
            "fail_metal_fraction",
            "metal_hu",
        ),
    ),
    "radiograph_pixels": (
        RADIOGRAPH,
        (
            "max_clipped_fraction",
            "min_mean_display",
            "max_mean_display",
            "min_dynamic_range",
            "max_asymmetry",
            "max_foreign_fraction",
        ),
    ),
    "text": ((), ("text_min_rows",)),
    "photo_pixels": (
        PHOTOGRAPH,
        (
            "photo_min_sharpness",
            "photo_fail_sharpness",
            "photo_max_clipped_fraction",
            "photo_max_mean_luma",
            "photo_min_mean_luma",
            "photo_max_dark_fraction",
            "photo_min_fov_roundness",
            "photo_min_fov_diameter",
            "photo_max_fov_offset",
            "photo_min_fov_inside",
            "photo_min_side_px",
            "photo_fail_side_px",
            "photo_min_colour_spread",
        ),
    ),
}


def region_of(body_part: str | None) -> str:
    """The defaults' region of a project's body part: chest, abdomen, head or generic;
    "" when none is given (`Profile.default_for` then keeps its chest defaults)."""
    text = (body_part or "").strip().upper().replace(" ", "").replace("-", "")
    if not text:
        return ""
    for region, terms in _REGION_TERMS.items():
        if any(text == t or text.startswith(t) for t in terms):
            return region
    return "generic"


@dataclass(frozen=True)
class Profile:
    """Thresholds for one kind of reference dataset (defaults: lung CT)."""

    name: str = "lung-ct"
    modalities: tuple[str, ...] = ("CT",)
    body_part: str | None = "CHEST"
    # None = every registry rule that applies to the modality; otherwise exactly these.
    rules: tuple[str, ...] | None = None
    disabled: tuple[str, ...] = ()
    # slice geometry
    max_slice_thickness_mm: float = 1.25  # warn above
    fail_slice_thickness_mm: float = 2.5  # fail above
    min_slices: int | None = 100
    max_slices: int | None = None
    gap_factor: float = 1.5  # step > gap_factor * median step -> missing slice(s)
    duplicate_tolerance_mm: float = 0.01
    max_spacing_deviation: float = 0.1  # |step - median| / median: warn above
    fail_spacing_deviation: float = 0.3  # fail above
    orientation_tolerance: float = 0.01  # max abs difference of direction cosines
    pixel_spacing_min_mm: float = 0.1
    pixel_spacing_max_mm: float = 5.0
    # CT pixels
    air_hu: float = -1000.0
    soft_tissue_hu: float = 40.0
    hu_warn_tolerance: float = 50.0
    hu_fail_tolerance: float = 100.0
    max_noise_hu: float = 30.0  # warn above
    fail_noise_hu: float = 60.0
    max_truncation_fraction: float = 0.05  # body pixels on an image edge: warn above
    fail_truncation_fraction: float | None = None
    max_metal_fraction: float = 0.0005  # voxels > metal_hu: warn above
    fail_metal_fraction: float = 0.005
    metal_hu: float = 2500.0
    # radiograph pixels (display values normalised to 0..1, bright = dense)
    max_clipped_fraction: float = 0.05  # warn above; fail above 2x
    min_mean_display: float = 0.3
    max_mean_display: float = 0.7
    min_dynamic_range: float = 0.5  # p99 - p1: warn below
    max_asymmetry: float = 0.25  # |left - right| / mean of the lung fields: warn above
    max_foreign_fraction: float = 0.005  # saturated pixels in the central field: warn above
    # burned-in text
    text_min_rows: int = 3
    # photographs (OP/XC): 8-bit RGB, inside the fundus field of view. Each default sits
    # between the clean fixtures and the mildest defect level, measured with
    # `python -m tests.qc.photo_measure --seeds 0 1 2 3 4` (table and reasons in its docstring).
    photo_min_sharpness: float = 17.5  # p99 |LoG| of green, % of mean green: warn below
    photo_fail_sharpness: float = 11.0
    photo_max_clipped_fraction: float = 0.02  # FOV pixels with a channel >= 250: warn above
    photo_max_mean_luma: float = (
        130.0  # mean BT.601 luma (0-255) in the FOV: warn above; fail 1.25x
    )
    photo_min_mean_luma: float = 60.0  # warn below; fail below 0.6 x
    photo_max_dark_fraction: float = 0.1  # FOV pixels with luma < 20: warn above; fail 2x
    photo_min_fov_roundness: float = 0.9  # IoU of the bright region with its fitted circle
    photo_min_fov_diameter: float = 0.6  # FOV diameter / short side: warn below; fail 0.75x
    photo_max_fov_offset: float = 0.05  # centre distance / short side: warn above; fail 2x
    photo_min_fov_inside: float = 0.8  # fraction of the fitted circle inside the frame; fail -0.1
    photo_min_side_px: int = 800  # short side: warn below
    photo_fail_side_px: int = 512  # fail below
    photo_min_colour_spread: float = 8.0  # mean (max - min channel) in the FOV: fail below
    # BodyPartExamined values that count as `body_part` besides the header rule's own
    body_part_synonyms: tuple[str, ...] = ()

    @classmethod
    def default_for(cls, modality: str, body_part: str | None = None) -> Profile:
        """Sensible defaults for a modality and body part.

        CT: lung CT for the chest (and when no body part is given), abdominal CT
        (portal-venous, 5 mm at most, 40 slices), head CT (axial 5 mm, 20 slices),
        generic CT (no body part required, lenient geometry) for anything else.
        CR/DX: PA chest radiograph for the chest or no body part, otherwise a
        radiograph without the chest-only pixel rules. OP/XC: a colour fundus
        photograph (pixel spacing not required). Other modalities: lenient.
        """
        m = (modality or "").upper()
        region = region_of(body_part)
        if m == "CT":
            if region in ("", "chest"):
                return cls()
            if region == "abdomen":
                return cls(
                    name="abdomen-ct",
                    body_part="ABDOMEN",
                    body_part_synonyms=REGION_SYNONYMS["abdomen"],
                    max_slice_thickness_mm=3.0,
                    fail_slice_thickness_mm=5.0,
                    min_slices=40,
                    max_noise_hu=35.0,
                    fail_noise_hu=70.0,
                )
            if region == "head":
                return cls(
                    name="head-ct",
                    body_part="HEAD",
                    body_part_synonyms=REGION_SYNONYMS["head"],
                    max_slice_thickness_mm=5.0,
                    fail_slice_thickness_mm=10.0,
                    min_slices=20,
                    max_noise_hu=40.0,
                    fail_noise_hu=80.0,
                    max_truncation_fraction=0.1,
                )
            return cls(
                name="generic-ct",
                body_part=None,
                max_slice_thickness_mm=5.0,
                fail_slice_thickness_mm=10.0,
                min_slices=None,
            )
        if m in RADIOGRAPH:
            if region in ("", "chest"):
                return cls(
                    name=f"chest-{m.lower()}",
                    modalities=RADIOGRAPH,
                    min_slices=1,
                    max_slices=None,
                )
            return cls(
                name=f"{region}-{m.lower()}",
                modalities=RADIOGRAPH,
                body_part=None if region == "generic" else region.upper(),
                body_part_synonyms=REGION_SYNONYMS.get(region, ()),
                min_slices=1,
                max_slices=None,
                # lung-field symmetry and the central-field foreign body check are chest rules
                disabled=("xr_symmetry", "xr_foreign_object"),
            )
        if m in PHOTOGRAPH:
            return cls(
                name=f"fundus-{m.lower()}",
                modalities=PHOTOGRAPH,
                body_part=None,
                min_slices=1,
                max_slices=None,
                # a photograph has no calibrated pixel spacing: measure in pixels, say so
                # once; and no age (a camera's file and the import manifest carry none),
                # so an age warning on every photograph would only be noise
                disabled=("pixel_spacing", "patient_age"),
            )
        generic_part = region not in ("", "generic")
        return cls(
            name=f"generic-{m.lower() or 'unknown'}",
            modalities=(m,) if m else (),
            body_part=region.upper() if generic_part else None,
            body_part_synonyms=REGION_SYNONYMS.get(region, ()) if generic_part else (),
            max_slice_thickness_mm=5.0,
            fail_slice_thickness_mm=10.0,
            min_slices=None,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Profile:
        """Build from a dict; ``"base": "CT"`` starts from that modality's defaults,
        ``"region": "head"`` (a body part) from that body part's."""
        data = dict(data)
        base = data.pop("base", None)
        region = data.pop("region", None)
        start = cls.default_for(base or "CT", region) if base or region else cls()
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown profile field(s): {', '.join(unknown)}")
        for key in ("modalities", "rules", "disabled", "body_part_synonyms"):
            if key in data and data[key] is not None:
                if isinstance(data[key], str):
                    raise ValueError(f"profile field {key!r} must be a list")
                data[key] = tuple(str(v) for v in data[key])
        return replace(start, **data)

    @classmethod
    def from_json(cls, path: str | Path) -> Profile:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
        if not isinstance(data, dict):
            raise ValueError("a profile file must hold a JSON object")
        return cls.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("modalities", "rules", "disabled", "body_part_synonyms"):
            if out[key] is not None:
                out[key] = list(out[key])
        return out

    def wants(self, rule: str) -> bool:
        if rule in self.disabled:
            return False
        return self.rules is None or rule in self.rules
