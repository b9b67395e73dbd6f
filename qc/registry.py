"""The explicit rule registry: adding a rule = one function + one line here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .profile import Profile
from .result import RuleResult
from .rules import ct, header, photo, text, xr
from .series import SeriesInput

RuleFn = Callable[[SeriesInput, Profile], RuleResult]
CROSS = ("CT", "MR", "PT")
XR = ("CR", "DX")
PHOTO = ("OP", "XC")


@dataclass(frozen=True)
class Rule:
    key: str
    applies_to: tuple[str, ...]  # modalities; () = every modality
    kind: str  # "header" | "pixel"
    fn: RuleFn

    def applies(self, modality: str) -> bool:
        return not self.applies_to or modality.upper() in self.applies_to


def _r(key: str, applies_to: tuple[str, ...], kind: str, fn: RuleFn) -> tuple[str, Rule]:
    return key, Rule(key, applies_to, kind, fn)


RULES: dict[str, Rule] = dict(
    [
        _r("modality_match", (), "header", header.modality_match),
        _r("body_part_match", (), "header", header.body_part_match),
        _r("slice_thickness", CROSS, "header", header.slice_thickness),
        _r("pixel_spacing", (), "header", header.pixel_spacing),
        _r("slice_missing", CROSS, "header", header.slice_missing),
        _r("slice_duplicate", CROSS, "header", header.slice_duplicate),
        _r("slice_spacing_uniform", CROSS, "header", header.slice_spacing_uniform),
        _r("orientation_consistent", CROSS, "header", header.orientation_consistent),
        _r("slice_count", (), "header", header.slice_count),
        _r("acquisition_recorded", ("CT", "CR", "DX", "MR"), "header", header.acquisition_recorded),
        _r("patient_age", (), "header", header.patient_age),
        _r("ct_hu_calibration", ("CT",), "pixel", ct.ct_hu_calibration),
        _r("ct_noise", ("CT",), "pixel", ct.ct_noise),
        _r("ct_truncated_fov", ("CT",), "pixel", ct.ct_truncated_fov),
        _r("ct_metal", ("CT",), "pixel", ct.ct_metal),
        _r("xr_overexposure", XR, "pixel", xr.xr_overexposure),
        _r("xr_underexposure", XR, "pixel", xr.xr_underexposure),
        _r("xr_dynamic_range", XR, "pixel", xr.xr_dynamic_range),
        _r("xr_symmetry", XR, "pixel", xr.xr_symmetry),
        _r("xr_foreign_object", XR, "pixel", xr.xr_foreign_object),
        _r("photo_focus", PHOTO, "pixel", photo.photo_focus),
        _r("photo_overexposure", PHOTO, "pixel", photo.photo_overexposure),
        _r("photo_underexposure", PHOTO, "pixel", photo.photo_underexposure),
        _r("photo_field_of_view", PHOTO, "pixel", photo.photo_field_of_view),
        _r("photo_size", PHOTO, "header", photo.photo_size),
        _r("photo_colour", PHOTO, "pixel", photo.photo_colour),
        _r("burned_in_text", (), "pixel", text.burned_in_text),
    ]
)
