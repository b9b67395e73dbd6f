"""dictionary/data_dictionary.csv: every column of every table, both languages.

A column not described here fails `describe` (and the package test), so a new
column cannot ship undocumented. Attribute columns (attr_<key>) take their
type, unit, allowed values and labels from the label schema.
"""

from __future__ import annotations

from typing import Any

from export import fundus
from export.model import PackageInput
from export.nifdc_tables import headers

# column -> (type, unit, required, description_zh, description_en)
COLUMNS: dict[str, tuple[str, str, bool, str, str]] = {
    "case_id": ("string", "", True, "病例标识（假名）", "Case identifier (pseudonymous)"),
    "patient_pseudo_id": ("string", "", True, "患者假名标识", "Patient pseudonym"),
    "study_uid": ("uid", "", True, "去标识化后的检查实例 UID", "De-identified Study Instance UID"),
    "series_uid": (
        "uid",
        "",
        True,
        "去标识化后的序列实例 UID",
        "De-identified Series Instance UID",
    ),
    "seriesuid": (
        "uid",
        "",
        True,
        "序列实例 UID（LUNA16 列名）",
        "Series Instance UID (LUNA16 name)",
    ),
    "site_id": ("string", "", True, "中心假名标识", "Pseudonymous site identifier"),
    "site_type": ("string", "", False, "中心类型", "Site type"),
    "n_cases": ("integer", "", True, "病例数", "Number of cases"),
    "devices": (
        "list",
        "",
        False,
        "设备厂商与型号（分号分隔）",
        "Device makes and models (semicolon-separated)",
    ),
    "acquisition_year": ("integer", "year", False, "采集年份", "Acquisition year"),
    "manufacturer": ("string", "", False, "设备厂商", "Manufacturer"),
    "model": (
        "string",
        "",
        False,
        "设备型号或模型名称与版本",
        "Device model, or assist model name and version",
    ),
    "kvp": ("number", "kV", False, "管电压", "Peak kilovoltage"),
    "kernel": ("string", "", False, "重建卷积核", "Reconstruction kernel"),
    "slice_thickness_mm": ("number", "mm", False, "层厚", "Slice thickness"),
    "pixel_spacing_mm": ("list", "mm", False, "像素间距（行;列）", "Pixel spacing (row;column)"),
    "contrast": ("string", "", False, "对比剂", "Contrast agent"),
    "age_band": ("string", "year", False, "年龄段", "Age band"),
    "sex": ("enum", "", False, "性别（M/F/O）", "Sex (M/F/O)"),
    "split": (
        "enum",
        "",
        True,
        "数据划分：train / validation / test / sequestered-test",
        "Split: train / validation / test / sequestered-test",
    ),
    "n_readers": ("integer", "", True, "阅片医师人数", "Number of readers"),
    "n_reference_findings": (
        "integer",
        "",
        True,
        "参考标准病灶数（不含排除项）",
        "Reference findings (excluded ones not counted)",
    ),
    "case_label": (
        "enum",
        "",
        False,
        "患者水平标签：positive / negative",
        "Patient-level label: positive / negative",
    ),
    "reference_standard_type": (
        "enum",
        "",
        True,
        "参考标准类型：expert panel / pathology / follow-up",
        "Reference standard type: expert panel / pathology / follow-up",
    ),
    "qc_status": ("enum", "", True, "图像质控结果", "Image QC result"),
    "image_sha256": (
        "sha256",
        "",
        True,
        "按层序排列的各影像文件 SHA-256 之 SHA-256",
        "SHA-256 over the instances' SHA-256 values in slice order",
    ),
    "retired": (
        "boolean",
        "",
        True,
        "是否已退役（保留记录，不参与评价）",
        "Retired (kept on record, not scored)",
    ),
    "retired_reason": ("string", "", False, "退役原因", "Why the case was retired"),
    "read_id": ("string", "", True, "阅片任务标识", "Read identifier"),
    "reader_pseudo_id": ("string", "", True, "阅片医师假名", "Reader pseudonym"),
    "phase": (
        "integer",
        "",
        True,
        "阅片阶段（1 为盲读，2 为复核）",
        "Reading phase (1 blind, 2 review)",
    ),
    "started_at": ("datetime", "UTC", False, "开始时间", "Started at"),
    "submitted_at": ("datetime", "UTC", False, "提交时间", "Submitted at"),
    "finding_id": ("string", "", False, "病灶标识", "Finding identifier"),
    "finding_type": (
        "enum",
        "",
        False,
        "病灶类型（见标注规范）",
        "Finding type (see the label schema)",
    ),
    "x_mm": (
        "number",
        "mm",
        False,
        "病灶中心 x（患者坐标系 LPS）",
        "Finding centre x (patient LPS)",
    ),
    "y_mm": (
        "number",
        "mm",
        False,
        "病灶中心 y（患者坐标系 LPS）",
        "Finding centre y (patient LPS)",
    ),
    "z_mm": (
        "number",
        "mm",
        False,
        "病灶中心 z（患者坐标系 LPS）",
        "Finding centre z (patient LPS)",
    ),
    "coordX": ("number", "mm", True, "参考病灶中心 x（LPS）", "Reference centre x (LPS)"),
    "coordY": ("number", "mm", True, "参考病灶中心 y（LPS）", "Reference centre y (LPS)"),
    "coordZ": ("number", "mm", True, "参考病灶中心 z（LPS）", "Reference centre z (LPS)"),
    "diameter_mm": ("number", "mm", False, "直径", "Diameter"),
    "long_axis_mm": (
        "number",
        "mm",
        False,
        "长径：最大层面轮廓上的最长径（RECIST 1.1 / Fleischner 2017）；医师手绘长短径时取手绘值",
        "Long axis: longest diameter of the outline on its largest slice (RECIST 1.1 / "
        "Fleischner 2017); the reader's drawn axes when they drew them",
    ),
    "short_axis_mm": (
        "number",
        "mm",
        False,
        "短径：同一层面上垂直于长径的最长径",
        "Short axis: longest diameter perpendicular to the long axis on the same slice",
    ),
    "mean_diameter_mm": (
        "number",
        "mm",
        False,
        "平均径：(长径 + 短径) / 2（Fleischner 2017）",
        "Mean diameter: (long axis + short axis) / 2 (Fleischner 2017)",
    ),
    "volume_mm3": (
        "number",
        "mm3",
        False,
        "体积：各层轮廓面积 × 层间距之和",
        "Volume: sum over the drawn slices of outline area x slice spacing",
    ),
    "mean_hu": (
        "number",
        "HU",
        False,
        "轮廓内体素 CT 值的平均值（仅 CT）",
        "Mean CT value of the voxels inside the outlines (CT only)",
    ),
    "max_hu": (
        "number",
        "HU",
        False,
        "轮廓内体素 CT 值的最大值（仅 CT）",
        "Maximum CT value of the voxels inside the outlines (CT only)",
    ),
    "axes_from": (
        "enum",
        "",
        False,
        "长短径来源：contour（由轮廓计算）/ reader（医师手绘）/ attribute（医师填写的属性，"
        "测量功能之前保存的病灶）/ 空（无长短径）",
        "Where the axes come from: contour (computed from the outline) / reader (drawn by "
        "the reader) / attribute (typed by the reader, findings saved before measurements "
        "existed) / empty (no axes)",
    ),
    "confidence": ("number", "", False, "置信度（模型预标注时）", "Confidence (model proposals)"),
    "source": (
        "enum",
        "",
        False,
        "来源：manual / model-accepted / model-edited",
        "Origin: manual / model-accepted / model-edited",
    ),
    "model_sha256": (
        "sha256",
        "",
        False,
        "模型权重的 SHA-256（来自模型的病灶）",
        "SHA-256 of the assist model's weights (model-sourced findings)",
    ),
    "origin": (
        "enum",
        "",
        True,
        "来源：manual / model-derived（至少一个支持它的医师标注来自模型）",
        "Origin: manual / model-derived (at least one supporting reader mark came from a model)",
    ),
    "n_model_marks": (
        "integer",
        "",
        True,
        "支持它的医师标注中来自模型的个数",
        "Supporting reader marks that came from a model",
    ),
    "assist_models": (
        "list",
        "",
        False,
        "其背后的模型：名称 版本 sha256:权重哈希（分号分隔）",
        "Models behind it: name version sha256:weights hash (semicolon-separated)",
    ),
    "tool_version": ("string", "", False, "标注工具及版本", "Annotation tool and version"),
    "ref_finding_id": ("string", "", True, "参考病灶标识", "Reference finding identifier"),
    "revision": ("integer", "", True, "参考标准修订号", "Reference revision"),
    "n_readers_marked": ("integer", "", True, "标出该病灶的医师数", "Readers who marked it"),
    "reader_ids": (
        "list",
        "",
        False,
        "标出该病灶的医师假名",
        "Pseudonyms of the readers who marked it",
    ),
    "decision": (
        "enum",
        "",
        True,
        "决定方式或仲裁结论",
        "Decision mechanism or arbitration verdict",
    ),
    "arbitration_id": ("string", "", False, "仲裁记录标识", "Arbitration record id"),
    "seg_ref": ("path", "", False, "对应的 DICOM SEG 文件", "The DICOM SEG file holding its shape"),
    "exclusion_reason": ("string", "", True, "不计分原因", "Why it is not scored"),
    "read_id_or_empty": ("string", "", False, "", ""),
    "dispute_id": ("string", "", True, "争议标识", "Dispute identifier"),
    "cluster_id": ("string", "", False, "匹配簇标识", "Matched cluster identifier"),
    "trigger": (
        "enum",
        "",
        True,
        "争议原因：existence / type / size / case label",
        "What was disputed: existence / type / size / case label",
    ),
    "reader_votes": ("json", "", True, "各医师的意见", "Each reader's vote"),
    "arbitrator_pseudo_id": ("string", "", True, "仲裁专家假名", "Arbitrator pseudonym"),
    "information_shown": (
        "string",
        "",
        True,
        "仲裁时可见的信息",
        "Information shown to the arbitrator",
    ),
    "reason_code": ("string", "", False, "理由代码", "Reason code"),
    "reason_text": ("string", "", False, "理由说明", "Reason text"),
    "decided_at": ("datetime", "UTC", True, "决定时间", "Decided at"),
    "pseudo_id": ("string", "", True, "人员假名", "Person's pseudonym"),
    "role": ("enum", "", True, "角色：reader / arbitrator", "Role: reader / arbitrator"),
    "specialty": ("string", "", False, "专业", "Specialty"),
    "title_band": ("string", "", False, "职称", "Professional title"),
    "experience_band": ("string", "year", False, "从业年限段", "Years of experience band"),
    "training_date": ("date", "", False, "培训日期", "Training date"),
    "test_set": ("string", "", True, "资格考核题集", "Qualification test set"),
    "date": ("date", "", True, "日期", "Date"),
    "sensitivity": ("number", "", False, "敏感度", "Sensitivity"),
    "fp_per_case": ("number", "", False, "每例假阳性数", "False positives per case"),
    "kappa_vs_reference": (
        "number",
        "",
        False,
        "与参考标准的 kappa",
        "Kappa against the reference",
    ),
    "threshold": ("string", "", True, "合格标准", "Pass threshold"),
    "passed": ("boolean", "", True, "是否通过", "Passed"),
    "attempt": ("integer", "", True, "第几次考核", "Attempt number"),
    "rule": ("string", "", True, "质控规则", "QC rule"),
    "status": (
        "enum",
        "",
        True,
        "结果：pass / warn / fail / overridden",
        "Result: pass / warn / fail / overridden",
    ),
    "value": ("string", "", False, "测得值", "Measured value"),
    "message": ("string", "", False, "说明", "Message"),
    "sop_instance_uid": (
        "uid",
        "",
        True,
        "去标识化后的 SOP 实例 UID",
        "De-identified SOP Instance UID",
    ),
    "slice_index": (
        "integer",
        "",
        True,
        "层序号（沿层面法线排序，从 0 开始）",
        "Slice index (sorted along the normal, from 0)",
    ),
    "path": ("path", "", True, "包内相对路径", "Path inside the package"),
    "sha256": ("sha256", "", True, "文件的 SHA-256", "SHA-256 of the file"),
    # photographs (export/fundus.py): tables/photos.csv, annotations/fundus_*.csv
    "image_id": (
        "string",
        "",
        True,
        "照片标识：病例标识-序号（按层序从 1 起）",
        "Photograph identifier: case id-number (from 1 in slice order)",
    ),
    "laterality": (
        "enum",
        "",
        False,
        "眼别：OD（右眼）/ OS（左眼）",
        "Eye: OD (right) / OS (left)",
    ),
    "rows": ("integer", "pixel", True, "图像行数（高）", "Image rows (height)"),
    "columns": ("integer", "pixel", True, "图像列数（宽）", "Image columns (width)"),
    "photometric": (
        "enum",
        "",
        True,
        "DICOM 光度解释（RGB / MONOCHROME2 等）",
        "DICOM Photometric Interpretation (RGB / MONOCHROME2 ...)",
    ),
    "source_file": (
        "enum",
        "",
        False,
        "导入时记录的原始文件格式：JPEG / PNG / TIFF / DICOM（空：导入时尚未记录）",
        "File format the image arrived in, recorded at import: JPEG / PNG / TIFF / DICOM "
        "(empty: imported before it was recorded)",
    ),
    "source_format": (
        "enum",
        "",
        True,
        "原始文件的像素格式：JPEG / PNG / TIFF（规则见 docs/photos.json）",
        "Pixel format of the source file: JPEG / PNG / TIFF (rule in docs/photos.json)",
    ),
    "lossy_source": (
        "boolean",
        "",
        True,
        "来源是否经过有损压缩（JPEG）",
        "Whether the source went through lossy compression (JPEG)",
    ),
    "photo_format": (
        "enum",
        "",
        False,
        "包内照片文件的格式（空：照片未随包提供）",
        "Format of the photograph file in the package (empty: not shipped)",
    ),
    "photo_path": (
        "path",
        "",
        False,
        "按原始像素格式重新编码、不含任何元数据的照片（包内路径）",
        "The photograph re-encoded in its original pixel format, without any metadata "
        "(path in the package)",
    ),
    "photo_sha256": ("sha256", "", False, "照片文件的 SHA-256", "SHA-256 of the photograph file"),
    "dicom_path": (
        "path",
        "",
        False,
        "去标识化 DICOM 对象（包内路径）",
        "The de-identified DICOM object (path in the package)",
    ),
    "psnr_db": (
        "number",
        "dB",
        False,
        "重新编码的 JPEG 相对 DICOM 像素的峰值信噪比（PNG/TIFF 无损，为空）",
        "PSNR of the re-encoded JPEG against the DICOM pixels (empty for lossless PNG/TIFF)",
    ),
    "visit_uid": (
        "uid",
        "",
        True,
        "就诊标识：去标识化后的检查实例 UID（每名患者每次就诊一个检查）",
        "Visit: the de-identified Study Instance UID (one study per patient and visit)",
    ),
    "dr_grade": (
        "ordinal",
        "",
        False,
        "糖尿病视网膜病变分级（国际临床分级 0-4）或 ungradable（无法分级）",
        "Diabetic retinopathy grade (international clinical scale 0-4) or ungradable",
    ),
    "dmo": (
        "enum",
        "",
        False,
        "糖尿病黄斑水肿：absent / present / ungradable",
        "Diabetic macular oedema: absent / present / ungradable",
    ),
    "referable_dr": (
        "boolean",
        "",
        False,
        "需转诊的糖尿病视网膜病变（≥2 级或黄斑水肿）；无法判断时为空",
        "Referable DR (grade >= 2 or macular oedema); empty when it cannot be told",
    ),
    "other_findings": (
        "list",
        "",
        False,
        "其他病变（分号分隔）",
        "Other findings (semicolon-separated)",
    ),
    "vertical_cdr": (
        "number",
        "",
        False,
        "垂直杯盘比：视杯轮廓纵向高度 / 视盘轮廓纵向高度（同一图像像素）",
        "Vertical cup-to-disc ratio: vertical extent of the cup outline / that of the disc "
        "outline (pixels of the same image)",
    ),
    "grade_decision": (
        "enum",
        "",
        False,
        "参考分级的得出方式：auto-consensus（医师一致）/ arbitrated（仲裁）/ imported",
        "How the reference grade was reached: auto-consensus (readers agreed) / arbitrated / "
        "imported",
    ),
    "dmo_decision": (
        "enum",
        "",
        False,
        "参考黄斑水肿结论的得出方式：auto-consensus / arbitrated / imported",
        "How the reference DMO answer was reached: auto-consensus / arbitrated / imported",
    ),
    "label_decision": (
        "enum",
        "",
        False,
        "参考病例标签修订的决定方式（任一字段经仲裁即为 arbitrated）",
        "Decision of the reference labels revision (arbitrated when any field was)",
    ),
    "reference_revision": (
        "integer",
        "",
        False,
        "参考病例标签修订号",
        "Reference labels revision",
    ),
    "n_reads": ("integer", "", True, "该病例的阅片数（各阶段）", "Reads of the case (all phases)"),
    "reader_grades": (
        "list",
        "",
        False,
        "各医师分级：假名@阶段:分级（分号分隔；详见 annotations/fundus_reads.csv）",
        "Each reader's grade: pseudonym@phase:grade (semicolon-separated; details in "
        "annotations/fundus_reads.csv)",
    ),
    "n_lesions": (
        "integer",
        "",
        True,
        "病灶标注数（不含视盘与视杯轮廓）",
        "Lesion marks (disc and cup outlines not counted)",
    ),
    "lesion_counts": (
        "list",
        "",
        False,
        "各类病灶标注数：类型:数量（分号分隔）",
        "Lesion marks per type: type:count (semicolon-separated)",
    ),
    "disc_outlined": ("boolean", "", True, "是否勾画视盘", "Optic disc outlined"),
    "cup_outlined": ("boolean", "", True, "是否勾画视杯", "Optic cup outlined"),
}


def _label(item: dict, lang: str) -> str:
    label = item.get("label", item.get("key", ""))
    if isinstance(label, dict):
        return label.get(lang) or label.get("en") or ""
    return str(label)


def attribute_rows(inp: PackageInput) -> dict[str, list[Any]]:
    rows: dict[str, list[Any]] = {}
    definition = inp.schema.get("definition", inp.schema)
    for ftype in definition.get("finding_types", []):
        for attr in ftype.get("attributes", []):
            kind = attr.get("kind", "text")
            allowed = ""
            if kind == "enum":
                allowed = [o["value"] for o in attr.get("options", [])]
            elif kind == "ordinal":
                allowed = f"{attr.get('min')}..{attr.get('max')}"
            rows.setdefault(
                f"attr_{attr['key']}",
                [kind, attr.get("unit", ""), allowed, bool(attr.get("required"))]
                + [_label(attr, "zh-hans"), _label(attr, "en")],
            )
    for fld in definition.get("case_fields", []):
        rows.setdefault(fld["key"], ["case field", "", _allowed(fld), bool(fld.get("required"))])
        rows[fld["key"]] += [_label(fld, "zh-hans"), _label(fld, "en")]
    for fld in definition.get("derived", []):
        rows.setdefault(
            fld["key"],
            [f"derived {fld.get('kind', '')}".strip(), "", "", False]
            + [_label(fld, "zh-hans"), _label(fld, "en")],
        )
    return rows


def _allowed(fld: dict) -> Any:
    """A case field's allowed values: options, or min..max plus values outside the scale."""
    kind = fld.get("kind")
    outside = [o["value"] for o in fld.get("outside_scale", [])]
    if kind == "enum":
        return [o["value"] for o in fld.get("options", [])] + outside
    if kind == "ordinal" and fld.get("min") is not None:
        return ";".join([f"{fld.get('min')}..{fld.get('max')}", *outside])
    return ""


def describe(inp: PackageInput) -> list[list[Any]]:
    attrs = attribute_rows(inp)
    rows = []
    for rel, columns in {**headers(inp), **fundus.headers(inp)}.items():
        for col in columns:
            if col in attrs:
                rows.append([rel, col, *attrs[col]])
                continue
            if col not in COLUMNS:
                raise KeyError(f"{rel}: column {col!r} is not in the data dictionary")
            kind, unit, required, zh, en = COLUMNS[col]
            rows.append([rel, col, kind, unit, "", required, zh, en])
    return rows


def write(out, inp: PackageInput) -> None:
    out.write_csv(
        "dictionary/data_dictionary.csv",
        ["file", "column", "type", "unit", "allowed_values", "required"]
        + ["description_zh", "description_en"],
        describe(inp),
    )
