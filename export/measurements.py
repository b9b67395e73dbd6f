"""docs/measurements.json: how the findings' measurements in the package were
made, where they are, and how many findings have each kind.

The rules are qc/measurements.py's (its module docstring states every one);
this states them for the package's reader in both languages, names the table
columns and the SR codes that carry them (export/sr.py), and counts the
findings by where their axes come from (`axes_from`, export/model.py).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from export.model import PackageInput
from export.nifdc_tables import MEASURED, REFERENCE_MEASURED
from qc.measurements import METHOD

RULES = {
    "zh": [
        "长径：病灶轮廓面积最大的层面上，轮廓任意两点间的最长距离（RECIST 1.1 最长径，"
        "Fleischner 2017 长径），按行列像素间距分别换算为毫米。",
        "短径：同一层面上与长径严格垂直的最长轮廓跨度。",
        "平均径：(长径 + 短径) / 2。",
        "体积：各层轮廓面积 × 层间距之和（Cavalieri 估计）；单幅图像无体积。",
        "CT 值：轮廓内体素（中心落在轮廓内）的平均值与最大值，单位 HU，仅 CT。",
        "医师手绘长短径时以手绘值为准（axes_from = reader）；测量功能之前保存的病灶取医师"
        "填写的属性（axes_from = attribute）。无像素间距时长度不以毫米给出（留空）。",
    ],
    "en": [
        "Long axis: the longest distance between two points of the outline on the slice "
        "where it encloses the largest area (RECIST 1.1 longest diameter, Fleischner 2017 "
        "long axis), rows and columns scaled by their own pixel spacing.",
        "Short axis: the longest extent of the outline exactly perpendicular to the long "
        "axis on the same slice.",
        "Mean diameter: (long axis + short axis) / 2.",
        "Volume: sum over the drawn slices of outline area x slice spacing (Cavalieri); "
        "none for a single image.",
        "HU: mean and maximum over the voxels whose centres lie inside the outlines, CT only.",
        "Axes the reader drew override the outline's (axes_from = reader); findings saved "
        "before measurements existed give the axes the reader typed (axes_from = "
        "attribute). Without a pixel spacing no length is given in mm (left empty).",
    ],
}
SR_CODES = [
    {"value": "long axis", "concept": "SCT 103339001 Long axis", "unit": "UCUM mm"},
    {"value": "short axis", "concept": "SCT 103340004 Short axis", "unit": "UCUM mm"},
    {"value": "volume", "concept": "SCT 118565006 Volume", "unit": "UCUM mm3"},
    {
        "value": "mean HU",
        "concept": "DCM 112031 Attenuation Coefficient",
        "derivation": "SCT 373098007 Mean",
        "unit": "UCUM [hnsf'U]",
    },
    {
        "value": "max HU",
        "concept": "DCM 112031 Attenuation Coefficient",
        "derivation": "SCT 56851009 Maximum",
        "unit": "UCUM [hnsf'U]",
    },
]


def _counts(items) -> dict[str, int]:
    return dict(sorted(Counter(i.axes_from or "none" for i in items).items()))


def document(inp: PackageInput) -> dict[str, Any]:
    findings = [f for r in inp.reads for f in r.findings]
    reference = [r for r in inp.reference if not r.excluded]
    return {
        "method": METHOD,
        "rules_zh": RULES["zh"],
        "rules_en": RULES["en"],
        "columns": {
            "annotations/reader_reads.csv": ["long_axis_mm", "short_axis_mm", "volume_mm3"]
            + MEASURED,
            "annotations/reference_standard.csv": REFERENCE_MEASURED,
            "annotations/reference_excluded.csv": REFERENCE_MEASURED,
        },
        "dicom_sr": SR_CODES,
        "findings_by_axes_from": {"reads": _counts(findings), "reference": _counts(reference)},
    }
