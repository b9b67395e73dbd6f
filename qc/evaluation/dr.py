"""Scoring a diabetic-retinopathy grading product on a frozen fundus version.

Framework-free. A fundus version has one colour photograph per case (one
series, one instance), each case of one pseudonymised patient and visit, its
laterality (OD/OS) in the de-identified object's ImageLaterality. The reference
is the case's adjudicated labels of the shipped `fundus-dr` schema: `dr_grade`
(international clinical DR scale 0-4, or "ungradable") and `dmo` (absent /
present / ungradable); referable DR is derived by the schema's rule (the same
as annotation_server/reading/derived.py): grade >= the grade field's
`referable_from` (2) or DMO present.

The submission (qc.evaluation.submission.parse_dr_grading) gives per image a
predicted grade and/or a referable-DR probability, optional DMO.

Conventions (also written into every result's `conventions`):
- the image is the case (the package's case_id; a seriesuid row names its case);
- reference: an image whose reference DR grade is ungradable is left out of
  every figure and counted (`reference_ungradable`); it still has its row in
  the confusion matrix; an image without reference labels is left out and
  counted (`reference_missing`); an image whose referable status cannot be
  derived (grade below referable_from and DMO ungradable or missing) is left
  out of the referable figures and counted (`reference_referable_unknown`)
  but kept in the grade figures;
- the product's referable score: its probability when the submission has a
  probability column, else its grade (DMO present raises it to referable_from),
  so that "score >= referable_from" is the product's grade-based referable call;
- an image the product skipped (no row) or called ungradable has no score: it is
  left out of the AUC, sensitivity and specificity and counted; the
  `*_ungradable_referred` figures count it as referred (called referable), as a
  screening programme does;
- per-patient: a patient's score is the maximum over the patient's scored
  images; the patient is referable when any of its images with a gradable
  reference is (scored or not: a referable eye the product skipped still makes
  the patient referable); a patient is called referable when any scored image
  is; patients without a scored image are left out;
- macular oedema (DMO), when the submission has a `dmo` and/or `dmo_probability`
  column: "ungradable" is off the scale, as for the DR grade. The reference is
  the image's reference DMO; an image whose reference DMO is ungradable
  (`reference_dmo_ungradable`) or missing (`reference_dmo_missing`) is left out
  of the DMO figures and counted, whatever its DR grade. The product's DMO
  score is its `dmo_probability` when given, else its call (present 1, absent
  0); its call is its `dmo` when given, else probability >= DMO_THRESHOLD
  (0.5). An image the product called ungradable or gave no DMO output (no row
  or an empty cell) has no DMO score: left out of dmo_auc, dmo_sensitivity and
  dmo_specificity and counted (`product_dmo_ungradable`, `product_dmo_not_given`);
  `dmo_*_ungradable_referred` count it as called present;
- macular oedema per patient, as for referable DR: a patient has DMO (reference)
  when any of its images with a gradable reference DMO has it present, scored
  by the product or not (an eye with oedema the product skipped still makes the
  patient positive); patients none of whose images has a gradable reference
  DMO are left out (counted: `patients` - `dmo_reference_patients`). The
  patient's DMO score is the maximum over its DMO-scored images and the patient
  is called present when any of them is; patients without a DMO-scored image
  are left out (counted: `dmo_reference_patients` - `dmo_scored_patients`);
- AUC: Mann-Whitney with DeLong's 95% interval (the kit's fast DeLong,
  qc.evaluation.classification: no maintained library computes DeLong's
  variance); sensitivity and specificity with Wilson 95% intervals
  (statsmodels); quadratic weighted kappa of predicted vs reference grade over
  images with both a 0-4 grade (scikit-learn's cohen_kappa_score), its interval
  a percentile bootstrap over patients (clusters: a patient's two eyes are not
  independent), seeded.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from qc.evaluation.classification import delong, delong_ci, roc_curve

KIND = "dr_grading"
GRADES = (0, 1, 2, 3, 4)
UNGRADABLE = "ungradable"
DMO_VALUES = ("absent", "present", "ungradable")
GRADE_KEY = "dr_grade"
DMO_KEY = "dmo"
REFERABLE_KEY = "referable_dr"  # the schema's derived field, frozen with the reference
DEFAULT_REFERABLE_FROM = 2
DMO_PRESENT, DMO_ABSENT = "present", "absent"
DMO_THRESHOLD = 0.5  # a dmo_probability at or above it calls oedema present (no dmo column)
# Rows and columns of the grade confusion matrix.
MATRIX_ROWS = (*[str(g) for g in GRADES], UNGRADABLE)
MATRIX_COLUMNS = (*MATRIX_ROWS, "not_given")
STRATA = ("site", "manufacturer", "laterality")

CONVENTIONS = {
    "image": "one image per case: the package's case_id (a seriesuid row names its case)",
    "reference_referable": (
        "referable DR = reference grade >= referable_from or DMO present (the fundus-dr "
        "schema's derived rule)"
    ),
    "reference_ungradable": (
        "images whose reference DR grade is ungradable are left out of every DR figure and "
        "counted; they keep their row in the confusion matrix"
    ),
    "reference_unknown": (
        "images without reference labels are left out and counted; images whose referable "
        "status cannot be derived (grade below the cut-off, DMO ungradable or missing) are "
        "left out of the referable figures only"
    ),
    "product_score": (
        "the submitted referable probability; without a probability column the predicted "
        "grade (DMO present raises it to referable_from)"
    ),
    "product_no_output": (
        "images the product skipped or called ungradable have no score and are left out of "
        "AUC, sensitivity and specificity (counted); the *_ungradable_referred figures count "
        "them as referred"
    ),
    "threshold_rule": "a score at or above the threshold calls the image referable",
    "grade_cutoff": "predicted grade >= referable_from or predicted DMO present",
    "patient_rule": (
        "patient score = maximum over the patient's scored images; patient referable = any of "
        "the patient's images with a gradable reference is referable (scored by the product or "
        "not); patient called referable = any scored image called referable; patients without "
        "a scored image are left out"
    ),
    "auc_ci": "DeLong (fast algorithm, Sun & Xu 2014): AUC +- 1.96 SE, clipped to [0, 1]",
    "proportion_ci": "Wilson score interval, 95% (statsmodels proportion_confint)",
    "kappa": (
        "quadratic weighted Cohen kappa over images with a 0-4 reference and predicted grade "
        "(scikit-learn cohen_kappa_score, labels 0-4)"
    ),
    "kappa_ci": "percentile 95% bootstrap over patients (every image of a drawn patient)",
}

DMO_CONVENTIONS = {
    "dmo_reference": (
        "macular oedema figures: images whose reference DMO is absent or present; an "
        "ungradable or missing reference DMO is left out of them and counted (whatever the "
        "DR grade)"
    ),
    "dmo_score": (
        "the submitted dmo_probability; without it the product's dmo call (present 1, absent 0)"
    ),
    "dmo_call": (
        f"the submitted dmo (present calls oedema); without a dmo column dmo_probability >= "
        f"{DMO_THRESHOLD}"
    ),
    "dmo_no_output": (
        "images the product called ungradable for DMO or gave no DMO output have no DMO "
        "score and are left out of dmo_auc, dmo_sensitivity and dmo_specificity (counted); "
        "the dmo_*_ungradable_referred figures count them as called present"
    ),
    "dmo_patient_rule": (
        "patient DMO score = maximum over the patient's DMO-scored images; patient DMO present "
        "= any of the patient's images with a gradable reference DMO has DMO present (scored "
        "by the product or not); patient called present = any DMO-scored image called present; "
        "patients without an image with a gradable reference DMO, and patients without a "
        "DMO-scored image, are left out (counted)"
    ),
}


@dataclass(frozen=True)
class DRImage:
    case_id: str
    series_uid: str
    patient_id: str
    visit_id: str = ""
    laterality: str = ""  # OD | OS | ""
    grade: int | str | None = None  # 0-4 | "ungradable" | None (no reference)
    dmo: str | None = None
    referable: bool | None = None
    strata: dict[str, str] = field(default_factory=dict)  # keys: STRATA


@dataclass(frozen=True)
class DRTruth:
    """The scored side of a DR evaluation; never handed to the product's side."""

    dataset_id: str
    version: str
    split: str
    images: tuple[DRImage, ...]
    referable_from: int = DEFAULT_REFERABLE_FROM
    manifest_sha256: str = ""
    rule: str = "referable_dr"

    @property
    def threshold(self) -> float:
        return float(self.referable_from)

    def case(self, case_id: str) -> DRImage | None:
        return self._index()[0].get(case_id)

    def by_series(self, series_uid: str) -> DRImage | None:
        return self._index()[1].get(series_uid)

    def _index(self) -> tuple[dict[str, DRImage], dict[str, DRImage]]:
        cache = self.__dict__.get("_image_index")
        if cache is None:
            cache = (
                {i.case_id: i for i in self.images},
                {i.series_uid: i for i in self.images},
            )
            object.__setattr__(self, "_image_index", cache)
        return cache


# --------------------------------------------------------------------------- truth


def grade_value(value: Any) -> int | str | None:
    """A reference or predicted grade as 0-4, "ungradable" or None."""
    if isinstance(value, bool) or value is None or value == "":
        return None
    if isinstance(value, int) and value in GRADES:
        return value
    if isinstance(value, float) and value.is_integer() and int(value) in GRADES:
        return int(value)
    if isinstance(value, str) and value.strip().lower() == UNGRADABLE:
        return UNGRADABLE
    return None


def referable(grade: Any, dmo: Any, referable_from: int = DEFAULT_REFERABLE_FROM) -> bool | None:
    """The fundus-dr schema's derived referable DR (reading/derived.py): True when
    the grade is >= referable_from or DMO is present; False when the grade is
    below and DMO absent; None otherwise."""
    g = grade_value(grade)
    by_grade = g >= referable_from if isinstance(g, int) else None
    by_dmo = None if dmo not in ("absent", "present") else dmo == "present"
    if by_grade or by_dmo:
        return True
    if by_grade is False and by_dmo is False:
        return False
    return None


def referable_from_schema(schema: Mapping[str, Any] | None) -> int:
    definition = (schema or {}).get("definition", schema or {})
    for f in definition.get("case_fields", []) if isinstance(definition, Mapping) else []:
        if f.get("key") == GRADE_KEY and f.get("referable_from") is not None:
            return int(f["referable_from"])
    return DEFAULT_REFERABLE_FROM


def is_dr_schema(schema: Mapping[str, Any] | None) -> bool:
    definition = (schema or {}).get("definition", schema or {})
    fields = definition.get("case_fields", []) if isinstance(definition, Mapping) else []
    return any(f.get("key") == GRADE_KEY for f in fields)


def dr_truth_from_package(
    inp,
    split: str = "",
    *,
    manifest_sha256: str = "",
    laterality: Mapping[str, str] | None = None,
) -> DRTruth:
    """The images and reference grades of one split ("" = every split) of a
    frozen version (export.model.PackageInput); retired cases left out.
    `laterality`: series_uid -> OD/OS; without it (or where it says nothing)
    the laterality the package input carries (recorded at import). Referable
    DR is the reference's derived field as frozen with the version when it is
    stored, else derived here by the same rule."""
    rf = referable_from_schema(inp.schema)
    images = []
    for case in inp.cases:
        if case.retired or (split and case.split != split) or not case.series:
            continue
        series = case.series[0]
        labels = inp.case_labels.get(case.case_id) or {}
        grade = grade_value(labels.get(GRADE_KEY))
        dmo = labels.get(DMO_KEY) if labels.get(DMO_KEY) in DMO_VALUES else None
        lat = (laterality or {}).get(series.series_uid, "")
        recorded = series.instances[0].laterality if series.instances else None
        if not lat and recorded:
            lat = {"R": "OD", "L": "OS"}.get(recorded, "")
        frozen = getattr((inp.reference_labels or {}).get(case.case_id), "derived", None) or {}
        images.append(
            DRImage(
                case_id=case.case_id,
                series_uid=series.series_uid,
                patient_id=case.patient_pseudo_id,
                visit_id=series.study_uid,
                laterality=lat,
                grade=grade,
                dmo=dmo,
                referable=None
                if grade in (None, UNGRADABLE)
                else frozen[REFERABLE_KEY]
                if isinstance(frozen.get(REFERABLE_KEY), bool)
                else referable(grade, dmo, rf),
                strata={
                    "site": case.site_id or "unknown",
                    "manufacturer": series.manufacturer or "unknown",
                    "laterality": lat or "unknown",
                },
            )
        )
    return DRTruth(
        dataset_id=inp.dataset_id,
        version=inp.version,
        split=split,
        images=tuple(images),
        referable_from=rf,
        manifest_sha256=manifest_sha256,
    )


# --------------------------------------------------------------------------- math


def wilson(successes: int, n: int) -> dict:
    """{"value", "ci"} of a proportion with its Wilson 95% interval."""
    if n <= 0:
        return {"value": None, "ci": None}
    from statsmodels.stats.proportion import proportion_confint

    lo, hi = proportion_confint(int(successes), int(n), alpha=0.05, method="wilson")
    return {"value": successes / n, "ci": [float(lo), float(hi)]}


def sens_spec(y: np.ndarray, called: np.ndarray) -> dict[str, Any]:
    """Sensitivity and specificity (Wilson intervals) and the 2x2 table."""
    y = np.asarray(y, dtype=bool)
    called = np.asarray(called, dtype=bool)
    tp = int((y & called).sum())
    fn = int((y & ~called).sum())
    tn = int((~y & ~called).sum())
    fp = int((~y & called).sum())
    return {
        "sensitivity": wilson(tp, tp + fn),
        "specificity": wilson(tn, tn + fp),
        "table": {"tp": tp, "fn": fn, "tn": tn, "fp": fp},
    }


def auc_figure(y: np.ndarray, s: np.ndarray) -> dict:
    y = np.asarray(y, dtype=bool)
    if not len(y) or y.all() or not y.any():
        return {"value": None, "ci": None}
    auc, var = delong(y, s)
    return {"value": float(auc), "ci": delong_ci(auc, var)}


def quadratic_weights(k: int = len(GRADES)) -> np.ndarray:
    i = np.arange(k)
    return (i[:, None] - i[None, :]) ** 2 / float((k - 1) ** 2)


def kappa_from_matrices(m: np.ndarray) -> np.ndarray:
    """Quadratic weighted kappa of (..., k, k) confusion matrices (NaN where undefined);
    the formula of scikit-learn's cohen_kappa_score."""
    m = np.asarray(m, dtype=float)
    k = m.shape[-1]
    w = quadratic_weights(k)
    total = m.sum(axis=(-2, -1))
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = (
            m.sum(axis=-1)[..., :, None] * m.sum(axis=-2)[..., None, :] / total[..., None, None]
        )
        observed_d = (w * m).sum(axis=(-2, -1))
        expected_d = (w * expected).sum(axis=(-2, -1))
        kappa = 1.0 - observed_d / expected_d
    return np.where(np.isfinite(kappa), kappa, np.nan)


def quadratic_kappa(ref: Sequence[int], pred: Sequence[int]) -> float | None:
    if not len(ref):
        return None
    from sklearn.metrics import cohen_kappa_score

    value = float(cohen_kappa_score(ref, pred, labels=list(GRADES), weights="quadratic"))
    return value if np.isfinite(value) else None


def grade_matrix(ref: Sequence[int], pred: Sequence[int]) -> np.ndarray:
    """5x5 counts, rows reference grade, columns predicted grade."""
    m = np.zeros((len(GRADES), len(GRADES)), dtype=np.int64)
    np.add.at(m, (np.asarray(ref, dtype=int), np.asarray(pred, dtype=int)), 1)
    return m


def kappa_bootstrap(
    ref: np.ndarray, pred: np.ndarray, clusters: np.ndarray, *, resamples: int, seed: int
) -> list[float] | None:
    """Percentile 95% interval of the quadratic kappa, patients resampled."""
    if not len(ref) or resamples <= 0:
        return None
    from qc.evaluation.bootstrap import interval, weights

    ids, inverse = np.unique(clusters, return_inverse=True)
    w = weights(len(ids), resamples, seed)[:, inverse]  # (B, images): draws of each image
    k = len(GRADES)
    cell = np.asarray(ref, dtype=int) * k + np.asarray(pred, dtype=int)
    onehot = np.zeros((len(ref), k * k))
    onehot[np.arange(len(ref)), cell] = 1.0
    matrices = (w @ onehot).reshape(resamples, k, k)
    lo, hi = interval(kappa_from_matrices(matrices))
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return None
    return [float(lo), float(hi)]


# --------------------------------------------------------------------------- scoring


def _score(row, has_probability: bool, rf: int) -> float | None:
    if row is None:
        return None
    if has_probability:
        return None if row.probability is None else float(row.probability)
    g = row.grade
    if not isinstance(g, int):
        return None
    return float(max(g, rf) if row.dmo == "present" else g)


def _dmo_score(row, has_probability: bool) -> float | None:
    """The product's DMO score of one image, None when it gave none (see the module)."""
    if row is None or row.dmo == UNGRADABLE:
        return None
    if has_probability:
        return None if row.dmo_probability is None else float(row.dmo_probability)
    if row.dmo in (DMO_ABSENT, DMO_PRESENT):
        return 1.0 if row.dmo == DMO_PRESENT else 0.0
    return None


def _dmo_called(row, score: float) -> bool:
    if row.dmo in (DMO_ABSENT, DMO_PRESENT):
        return row.dmo == DMO_PRESENT
    return score >= DMO_THRESHOLD


def evaluate_dmo(truth: DRTruth, rows, *, columns: Sequence[str] = ()) -> dict[str, Any]:
    """The macular oedema figures, counts, 2x2 tables and ROC curve of a DR
    submission with a `dmo` and/or `dmo_probability` column (see the module)."""
    by_case = {r.case_id: r for r in rows}
    has_probability = "dmo_probability" in columns or any(
        getattr(r, "dmo_probability", None) is not None for r in rows
    )
    counts = {
        "dmo_reference_images": 0,
        "reference_dmo_ungradable": 0,
        "reference_dmo_missing": 0,
        "product_dmo_ungradable": 0,
        "product_dmo_not_given": 0,
        "dmo_scored_images": 0,
        "dmo_present_images": 0,
    }
    y, s, called, itt_y, itt_called = [], [], [], [], []
    present_patients: dict[str, bool] = {}  # every patient with a gradable reference DMO
    patient_score: dict[str, float] = {}  # DMO-scored patients: the max of their scores
    patient_called: dict[str, bool] = {}
    for image in truth.images:
        row = by_case.get(image.case_id)
        if image.dmo == UNGRADABLE:
            counts["reference_dmo_ungradable"] += 1
            continue
        if image.dmo not in (DMO_ABSENT, DMO_PRESENT):
            counts["reference_dmo_missing"] += 1
            continue
        counts["dmo_reference_images"] += 1
        present = image.dmo == DMO_PRESENT
        pid = image.patient_id
        present_patients[pid] = present_patients.get(pid, False) or present
        score = _dmo_score(row, has_probability)
        if score is None:
            if row is not None and row.dmo == UNGRADABLE:
                counts["product_dmo_ungradable"] += 1
            else:
                counts["product_dmo_not_given"] += 1
        itt_y.append(present)
        itt_called.append(True if score is None else _dmo_called(row, score))
        if score is None:
            continue
        y.append(present)
        s.append(score)
        called.append(_dmo_called(row, score))
        patient_score[pid] = max(patient_score.get(pid, score), score)
        patient_called[pid] = patient_called.get(pid, False) or called[-1]
    y_a, s_a = np.asarray(y, dtype=bool), np.asarray(s, dtype=float)
    counts["dmo_scored_images"] = len(y)
    counts["dmo_present_images"] = int(y_a.sum())
    patients = sorted(patient_score)
    py = np.array([present_patients[p] for p in patients], dtype=bool)
    ps = np.array([patient_score[p] for p in patients], dtype=float)
    counts["dmo_reference_patients"] = len(present_patients)
    counts["dmo_scored_patients"] = len(patients)
    counts["dmo_present_patients"] = int(py.sum())
    at = sens_spec(y_a, np.asarray(called, dtype=bool))
    pat = sens_spec(py, np.array([patient_called[p] for p in patients], dtype=bool))
    itt = sens_spec(np.asarray(itt_y, dtype=bool), np.asarray(itt_called, dtype=bool))
    return {
        "figures": {
            "dmo_auc": auc_figure(y_a, s_a),
            "dmo_patient_auc": auc_figure(py, ps),
            "dmo_sensitivity": at["sensitivity"],
            "dmo_specificity": at["specificity"],
            "dmo_patient_sensitivity": pat["sensitivity"],
            "dmo_patient_specificity": pat["specificity"],
            "dmo_sensitivity_ungradable_referred": itt["sensitivity"],
            "dmo_specificity_ungradable_referred": itt["specificity"],
        },
        "counts": counts,
        "tables": {
            "image": at["table"],
            "patient": pat["table"],
            "ungradable_referred": itt["table"],
        },
        "curve": roc_curve(y_a, s_a) if len(y) else {"fpr": [], "tpr": [], "thresholds": []},
        "score_source": "probability" if has_probability else "call",
    }


def _set_figures(
    y: np.ndarray,
    s: np.ndarray,
    patients: np.ndarray,
    *,
    threshold: float,
    referable_patients: set | None = None,
) -> dict[str, Any]:
    """Per-image and per-patient figures of one set of scored images.
    `referable_patients`: the patients with a referable image among every image
    with a known reference (scored or not); None: from the scored images."""
    out: dict[str, Any] = {"auc": auc_figure(y, s)}
    at = sens_spec(y, s >= threshold)
    out["sensitivity"], out["specificity"] = at["sensitivity"], at["specificity"]
    ids = sorted(set(patients.tolist()))
    if ids:
        index = {p: i for i, p in enumerate(ids)}
        pi = np.array([index[p] for p in patients], dtype=int)
        ps = np.full(len(ids), -np.inf)
        np.maximum.at(ps, pi, s)
        py = np.zeros(len(ids), dtype=bool)
        np.logical_or.at(py, pi, y)
        if referable_patients is not None:
            py |= np.array([p in referable_patients for p in ids], dtype=bool)
        out["patient_auc"] = auc_figure(py, ps)
        pat = sens_spec(py, ps >= threshold)
        out["patient_sensitivity"] = pat["sensitivity"]
        out["patient_specificity"] = pat["specificity"]
        out["_patient"] = (py, ps, pat["table"], ids)
    out["_table"] = at["table"]
    return out


def evaluate_dr(
    truth: DRTruth,
    rows,
    *,
    operating_threshold: float | None = None,
    bootstrap: int = 1000,
    seed: int = 0,
    columns: Sequence[str] = (),
    strata: bool = True,
) -> dict:
    """`rows`: qc.evaluation.submission.ImageGrade objects (at most one per case).
    `columns`: the submission's value columns ("grade", "probability", "dmo")."""
    rf = int(truth.referable_from)
    by_case = {r.case_id: r for r in rows}
    has_probability = "probability" in columns or any(r.probability is not None for r in rows)
    has_grade = "grade" in columns or any(r.grade is not None for r in rows)
    op = 0.5 if operating_threshold is None else float(operating_threshold)
    threshold = op if has_probability else float(rf)

    counts = {
        "images": len(truth.images),
        "patients": len({i.patient_id for i in truth.images}),
        "rows": len(by_case),
        "skipped": 0,
        "product_ungradable": 0,
        "reference_missing": 0,
        "reference_ungradable": 0,
        "reference_referable_unknown": 0,
        "scored_images": 0,
        "scored_patients": 0,
        "referable_images": 0,
        "graded_pairs": 0,
    }
    matrix = np.zeros((len(MATRIX_ROWS), len(MATRIX_COLUMNS)), dtype=np.int64)
    per_image = []
    y, s, pat, strata_of = [], [], [], []
    itt_y, itt_called = [], []  # every image with a known referable reference
    referable_patients: set[str] = set()  # a referable eye, whatever the product said
    referable_by_level: set[tuple[str, str, str]] = set()  # (stratum, level, patient)
    g_ref, g_pred, g_pat = [], [], []
    for image in truth.images:
        row = by_case.get(image.case_id)
        if row is None:
            counts["skipped"] += 1
        elif row.grade == UNGRADABLE:
            counts["product_ungradable"] += 1
        score = _score(row, has_probability, rf)
        entry = {
            "case_id": image.case_id,
            "patient_id": image.patient_id,
            "laterality": image.laterality,
            "reference_grade": image.grade,
            "reference_dmo": image.dmo,
            "reference_referable": image.referable,
            "predicted_grade": None if row is None else row.grade,
            "predicted_dmo": None if row is None else row.dmo,
            "dmo_probability": None if row is None else getattr(row, "dmo_probability", None),
            "probability": None if row is None else row.probability,
            "score": score,
            "scored": False,
        }
        per_image.append(entry)
        if image.grade is None:
            counts["reference_missing"] += 1
            continue
        r_i = MATRIX_ROWS.index(str(image.grade))
        if row is None or row.grade is None:
            c_i = len(MATRIX_COLUMNS) - 1
        else:
            c_i = MATRIX_COLUMNS.index(str(row.grade))
        matrix[r_i, c_i] += 1
        if image.grade == UNGRADABLE:
            counts["reference_ungradable"] += 1
            continue
        if row is not None and isinstance(row.grade, int):
            g_ref.append(image.grade)
            g_pred.append(row.grade)
            g_pat.append(image.patient_id)
        if image.referable is None:
            counts["reference_referable_unknown"] += 1
            continue
        itt_y.append(image.referable)
        if image.referable:
            referable_patients.add(image.patient_id)
            referable_by_level.update((k, v, image.patient_id) for k, v in image.strata.items())
        itt_called.append(True if score is None else score >= threshold)
        if score is None:
            continue
        entry["scored"] = True
        y.append(image.referable)
        s.append(score)
        pat.append(image.patient_id)
        strata_of.append(image.strata)

    y_a = np.asarray(y, dtype=bool)
    s_a = np.asarray(s, dtype=float)
    pat_a = np.asarray(pat, dtype=object)
    counts["scored_images"] = len(y)
    counts["scored_patients"] = len(set(pat))
    counts["referable_images"] = int(y_a.sum())
    counts["graded_pairs"] = len(g_ref)

    main = _set_figures(y_a, s_a, pat_a, threshold=threshold, referable_patients=referable_patients)
    table = main.pop("_table")
    py, ps, ptable, _ = main.pop("_patient", (np.zeros(0, bool), np.zeros(0), {}, []))
    counts["referable_patients"] = int(np.asarray(py).sum())
    figures: dict[str, Any] = {}
    figures["auc"] = main["auc"]
    figures["patient_auc"] = main.get("patient_auc", {"value": None, "ci": None})
    figures["sensitivity"] = main["sensitivity"]
    figures["specificity"] = main["specificity"]
    figures["patient_sensitivity"] = main.get("patient_sensitivity", {"value": None, "ci": None})
    figures["patient_specificity"] = main.get("patient_specificity", {"value": None, "ci": None})
    tables = {"image": table, "patient": ptable}
    if has_probability and has_grade:
        # the grade cut-off as well, on the images with a 0-4 predicted grade
        keep = []
        for e in per_image:
            if e["scored"] and isinstance(e["predicted_grade"], int):
                keep.append(e)
        gy = np.array([e["reference_referable"] for e in keep], dtype=bool)
        gcall = np.array(
            [e["predicted_grade"] >= rf or e["predicted_dmo"] == "present" for e in keep],
            dtype=bool,
        )
        cut = sens_spec(gy, gcall)
        figures["grade_sensitivity"] = cut["sensitivity"]
        figures["grade_specificity"] = cut["specificity"]
        tables["grade_cutoff"] = cut["table"]
    elif has_grade:
        figures["grade_sensitivity"] = main["sensitivity"]
        figures["grade_specificity"] = main["specificity"]
        tables["grade_cutoff"] = table
    itt = sens_spec(np.asarray(itt_y, dtype=bool), np.asarray(itt_called, dtype=bool))
    figures["sensitivity_ungradable_referred"] = itt["sensitivity"]
    figures["specificity_ungradable_referred"] = itt["specificity"]
    tables["ungradable_referred"] = itt["table"]
    if has_grade:
        figures["quadratic_kappa"] = {
            "value": quadratic_kappa(g_ref, g_pred),
            "ci": kappa_bootstrap(
                np.asarray(g_ref),
                np.asarray(g_pred),
                np.asarray(g_pat, dtype=object),
                resamples=bootstrap,
                seed=seed,
            ),
        }
        exact = sum(int(a == b) for a, b in zip(g_ref, g_pred, strict=True))
        figures["grade_agreement"] = wilson(exact, len(g_ref))

    out_strata: dict[str, dict] = {}
    if strata and len(y):
        for key in STRATA:
            levels = np.array([st.get(key, "unknown") for st in strata_of], dtype=object)
            out_strata[key] = {}
            for level in sorted(set(levels.tolist())):
                keep_l = levels == level
                f = _set_figures(
                    y_a[keep_l],
                    s_a[keep_l],
                    pat_a[keep_l],
                    threshold=threshold,
                    referable_patients={
                        p for k, v, p in referable_by_level if k == key and v == level
                    },
                )
                f.pop("_table")
                f.pop("_patient", None)
                out_strata[key][str(level)] = {
                    "scans": int(keep_l.sum()),
                    "lesions": int(y_a[keep_l].sum()),
                    "figures": f,
                }
    curves = {"roc": roc_curve(y_a, s_a) if len(y) else {"fpr": [], "tpr": [], "thresholds": []}}
    if len(py):
        curves["patient_roc"] = roc_curve(np.asarray(py), np.asarray(ps))
    has_dmo = bool({"dmo", "dmo_probability"} & set(columns)) or any(
        r.dmo is not None or getattr(r, "dmo_probability", None) is not None for r in rows
    )
    dmo = evaluate_dmo(truth, rows, columns=columns) if has_dmo else None
    if dmo is not None:
        figures.update(dmo["figures"])
        counts.update(dmo["counts"])
        curves["dmo_roc"] = dmo["curve"]
    return {
        "kind": KIND,
        "figures": figures,
        "curves": curves,
        "strata": out_strata,
        "grading": {
            "referable_from": rf,
            "threshold": threshold,
            "threshold_source": "operating threshold" if has_probability else "grade cut-off",
            "columns": [
                c
                for c, on in (
                    ("grade", has_grade),
                    ("probability", has_probability),
                    ("dmo", "dmo" in columns),
                    ("dmo_probability", "dmo_probability" in columns),
                )
                if on
            ],
            "confusion_matrix": {
                "rows": list(MATRIX_ROWS),
                "columns": list(MATRIX_COLUMNS),
                "counts": matrix.tolist(),
            },
            "referable_tables": tables,
            **(
                {"dmo": {"tables": dmo["tables"], "score_source": dmo["score_source"]}}
                if dmo is not None
                else {}
            ),
        },
        "conventions": {
            "operating_threshold": op if has_probability else None,
            "referable_from": rf,
            "bootstrap": {
                "resamples": int(bootstrap),
                "seed": int(seed),
                "unit": "patient",
                "interval": "percentile 95%",
            },
            **CONVENTIONS,
            **(DMO_CONVENTIONS if dmo is not None else {}),
        },
        "counts": counts,
        "images": per_image,
    }
