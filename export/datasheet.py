"""README.md (the datasheet), CHANGELOG.md and docs/, in Chinese and English.

The README follows the headings of Datasheets for Datasets (Gebru et al.):
motivation, composition, collection, preprocessing and labeling, uses,
distribution, maintenance; each section states the facts YY/T 1833 and the
CMDE 2023 guideline ask for, computed from the version, never typed.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from export import fundus, measurements, provenance
from export.model import PackageInput

MATCH_RULES = {
    "centre_distance": ("病灶中心距离不超过 {t} mm", "centre distance at most {t} mm"),
    "centre_in_contour": (
        "一方中心落在另一方轮廓内",
        "one mark's centre inside the other's contour",
    ),
    "distance_or_inside": (
        "病灶中心距离不超过 {t} mm，或一方中心落在另一方轮廓内",
        "centre distance at most {t} mm, or one centre inside the other's contour",
    ),
    "overlap_dice": ("Dice 重叠不低于 {t}", "Dice overlap at least {t}"),
    "overlap_iou": ("IoU 重叠不低于 {t}", "IoU overlap at least {t}"),
    "pylidc": (
        "轮廓点最小距离不超过层厚（同一医师的两处标注落入同簇时按 0.9 倍收紧，同 pylidc）",
        "minimum contour-point distance at most the slice thickness, tightened x0.9 while a "
        "cluster holds two marks of one reader (as pylidc)",
    ),
}


def match_rule_text(protocol: dict[str, Any]) -> tuple[str, str]:
    rule = protocol.get("match_rule", "")
    threshold = protocol.get("match_threshold", "")
    zh, en = MATCH_RULES.get(rule, (rule, rule))
    return zh.format(t=threshold), en.format(t=threshold)


def _counts(inp: PackageInput) -> dict[str, Any]:
    active = [c for c in inp.cases if not c.retired]
    readers = {r.pseudo_id for r in inp.roster if r.role == "reader"}
    arbitrators = {r.pseudo_id for r in inp.roster if r.role == "arbitrator"}
    return {
        "cases": len(active),
        "retired": len(inp.cases) - len(active),
        "patients": len({c.patient_pseudo_id for c in active}),
        "series": sum(len(c.series) for c in active),
        "images": sum(len(s.instances) for c in active for s in c.series),
        "sites": len({c.site_id for c in active}),
        "readers": len(readers),
        "arbitrators": len(arbitrators),
        "reads": len(inp.reads),
        "reference": sum(1 for r in inp.reference if not r.excluded),
        "excluded": sum(1 for r in inp.reference if r.excluded),
        "disputes": len(inp.arbitration_log),
        "splits": dict(sorted(Counter(c.split or "unassigned" for c in active).items())),
        "devices": sorted(
            {f"{s.manufacturer} {s.model}".strip() for c in active for s in c.series}
        ),
    }


def _experience(inp: PackageInput) -> str:
    bands = Counter(r.experience_band or "?" for r in inp.roster)
    return ", ".join(f"{band}: {n}" for band, n in sorted(bands.items())) or "-"


def _decision(protocol: dict[str, Any]) -> tuple[str, str]:
    mode = protocol.get("arbitration_mode", "")
    n = protocol.get("readers_per_case", "")
    if mode == "two_blind_tiebreak":
        return (
            f"每例 {n} 名医师背对背独立阅片；意见不一致时由两名仲裁专家盲态独立裁决，"
            "仍不一致由第三名专家裁决。",
            f"{n} readers per case, blind to each other; disagreements go to two blind "
            "arbitrators, and a third breaks a tie.",
        )
    return (
        f"每例 {n} 名医师背对背独立阅片；按一致性规则自动合并，"
        "意见不一致时由一名仲裁专家裁决并签名。",
        f"{n} readers per case, blind to each other; agreement is merged by the consensus "
        "rule, and one arbitrator decides each disagreement and signs.",
    )


def readme(inp: PackageInput) -> str:
    c = _counts(inp)
    p = inp.protocol
    rule_zh, rule_en = match_rule_text(p)
    dec_zh, dec_en = _decision(p)
    pre_zh, pre_en = provenance.summary(provenance.pre_annotation(inp))
    blind_review = "是" if p.get("review_phase") else "否"
    splits = ", ".join(f"{k}: {v}" for k, v in c["splits"].items())
    devices = "; ".join(c["devices"]) or "-"
    deid = inp.deid_profile.get("name", "PS3.15 Basic Application Level Confidentiality Profile")
    lines = [
        f"# {inp.title or inp.dataset_id} v{inp.version}",
        "",
        f"数据集标识 Dataset id: `{inp.dataset_id}`, 版本 version {inp.version}"
        + (f", 上一版本 parent {inp.parent_version}" if inp.parent_version else "")
        + f", 冻结时间 frozen at {inp.frozen_at}.",
        "",
        "## 动机 Motivation",
        "",
        f"{inp.description or '-'}",
        "",
        "本数据集为标准数据库，用于测试与评价医学影像人工智能产品。",
        "A reference standard database for testing and evaluating medical-imaging AI products.",
        "",
        "## 组成 Composition",
        "",
        f"- 病例 cases: {c['cases']}（退役 retired: {c['retired']}）; 患者 patients: "
        f"{c['patients']}; 序列 series: {c['series']}; 影像 images: {c['images']}",
        f"- 模态 modality: {inp.modality}; 部位 body part: {inp.body_part or '-'}",
        f"- 中心 sites: {c['sites']}; 设备 devices: {devices}",
        f"- 参考标准病灶 reference findings: {c['reference']}; 排除项 excluded: {c['excluded']}",
        f"- 数据划分 splits (patient level): {splits}",
        "- 纳入标准 inclusion: " + (inp.inclusion_criteria or "-"),
        "- 排除标准 exclusion: " + (inp.exclusion_criteria or "-"),
        "",
        *_photographs(inp),
        "## 采集 Collection",
        "",
        "影像来自各中心的 PACS 或设备，导入时去标识化（不含可识别患者的信息）。",
        "Images came from the sites' PACS or devices and were de-identified on import.",
        f"- 去标识化方案 de-identification: {deid}（见 docs/deidentification.json）",
        "",
        "## 预处理与标注 Preprocessing and labeling",
        "",
        f"- 标注工具 annotation tool: {inp.tool_version}",
        f"- 专家 experts: 阅片医师 {c['readers']} 名 readers, 仲裁专家 {c['arbitrators']} 名 "
        f"arbitrators; 年资 experience: {_experience(inp)}（见 people/roster.csv）",
        "- 资格考核 qualification: 阅片前须通过考核（见 people/qualification_results.csv）; "
        "readers passed a qualification test before reading",
        f"- 决定机制 decision mechanism: {dec_zh} {dec_en}",
        "- 阅片时可见信息 information shown to readers: "
        "第一阶段背对背盲读（看不到其他医师的标注）；"
        f"非盲复核阶段 unblinded review phase: {blind_review}. Phase 1 is blind: readers "
        "never see each other's marks.",
        f"- 匹配规则 match rule: {rule_zh}; {rule_en}",
        "- 测量 measurements: 长径、短径、体积与 CT 值由病灶轮廓计算（见 docs/measurements.json）; "
        "long and short axis, volume and HU computed from the outlines "
        "(docs/measurements.json)",
        f"- 临床标准 clinical criteria: {inp.clinical_criteria or '-'}",
        f"- 模型预标注 model pre-annotation used: {pre_zh}; {pre_en}",
        f"- 阅片记录 reads: {c['reads']}; 争议 disputes: {c['disputes']}",
        "- 质量控制 QC: 每个序列按质控方案检查（qc/image_qc.csv, docs/qc_plan.json）；"
        "readers' agreement in qc/agreement_stats.json",
        "",
        "## 用途 Uses",
        "",
        "用于医疗器械人工智能产品的性能测试；测试时按 manifest.json 中声明的匹配规则计分。"
        "封存测试集（sequestered-test）仅供监管测试使用。",
        "For performance testing of AI medical-device products, scored with the match rule "
        "declared in manifest.json. The sequestered test split is for regulatory testing only.",
        "",
        "## 分发 Distribution",
        "",
        "完整性由 MANIFEST.sha256 与 manifest.json 保证；用 `manage.py verify_package` 校验。"
        "包内不含患者身份信息和医师姓名。",
        "Integrity: MANIFEST.sha256 and manifest.json; check with `manage.py verify_package`. "
        "No patient identity and no reader names are in the package.",
        "",
        "## 维护 Maintenance",
        "",
        "更正以新版本发布，旧版本为其父版本；"
        "退役病例保留记录（见 CHANGELOG.md 与 tables/cases.csv）。",
        "Corrections are new versions with this one as parent; retired cases stay on record "
        "(CHANGELOG.md, tables/cases.csv).",
        "",
    ]
    return "\n".join(lines)


def _photographs(inp: PackageInput) -> list[str]:
    """The README's paragraph on photographs (fundus versions only)."""
    if not fundus.applies(inp):
        return []
    formats = Counter(p.source_format for p in fundus.photos(inp))
    listed = ", ".join(f"{k}: {v}" for k, v in sorted(formats.items())) or "-"
    q = fundus.JPEG_QUALITY
    return [
        "### 照片 Photographs",
        "",
        f"- 照片 photographs: {sum(formats.values())}（原始格式 source formats: {listed}）",
        "- images/ 为去标识化 DICOM（眼科照相）；photos/<case_id>/<image_id> 为按原始像素格式"
        "由 DICOM 像素重新编码的同一照片，不含任何元数据（EXIF、XMP、ICC、文本块、注释），"
        "文件名为包内标识而非原始文件名。PNG/TIFF 无损，像素与 DICOM 完全一致；JPEG 以质量 "
        f"{q}、4:4:4 重新编码（来源本为有损，原码流未保存），各张 PSNR 见 tables/photos.csv。",
        "- images/ holds the de-identified DICOM objects (ophthalmic photography); "
        "photos/<case_id>/<image_id> the same photographs re-encoded from the DICOM pixels in "
        "their source pixel format with no metadata at all (no EXIF, XMP, ICC, text chunks, "
        "comments), named by the package's identifiers, never the original file name. PNG and "
        "TIFF are lossless and pixel-identical to the DICOM; JPEG is re-encoded at quality "
        f"{q}, 4:4:4 (the source was lossy and its bitstream is not kept), its PSNR per "
        "photograph in tables/photos.csv (docs/photos.json).",
        "- 分级 grades: annotations/fundus_grades.csv（每张照片一行：患者、就诊、眼别、参考 DR "
        "分级或无法分级、黄斑水肿、需转诊、其他病变、垂直杯盘比、一致或仲裁）；"
        "annotations/fundus_reads.csv（每次阅片一行）。",
        "- grades: annotations/fundus_grades.csv (one row per photograph: patient, visit, eye, "
        "reference DR grade or ungradable, DMO, referable DR, other findings, vertical "
        "cup-to-disc ratio, agreed or arbitrated); annotations/fundus_reads.csv (one row per "
        "read).",
        "- 病灶与视盘/视杯: annotations/coco/（COCO；点标注为关键点加 "
        f"{coco_point_box()} 像素方框）；有面积的形状另见 annotations/dicom/SEG/"
        "（DICOM SEG，每次阅片一个、每张照片的参考标准一个）。",
        "- lesions and disc/cup outlines: annotations/coco/ (COCO; a point mark is a keypoint "
        f"plus a box of {coco_point_box()} pixels); shapes with an area also in "
        "annotations/dicom/SEG/ (DICOM SEG, one per read and one per photograph's reference).",
        "",
    ]


def coco_point_box() -> str:
    from export.coco import POINT_BOX_PX

    return f"{POINT_BOX_PX:g}"


def changelog(inp: PackageInput) -> str:
    ch = inp.changelog
    lines = [f"# CHANGELOG {inp.dataset_id} v{inp.version}", ""]
    if not ch.parent_version:
        lines += ["首个版本，无父版本。 First version, no parent.", ""]
    else:
        lines += [f"相对父版本 Since parent v{ch.parent_version}:", ""]
    lines += [f"## 新增病例 Cases added ({len(ch.cases_added)})", ""]
    lines += [f"- {case}" for case in sorted(ch.cases_added)] or ["- (无 none)"]
    lines += ["", f"## 退役病例 Cases retired ({len(ch.cases_retired)})", ""]
    lines += [f"- {case}: {reason}" for case, reason in sorted(ch.cases_retired)] or ["- (无 none)"]
    lines += ["", f"## 参考标准变更 Reference changes ({len(ch.reference_changes)})", ""]
    lines += [
        f"- {ref} {change}" + (f" (arbitration {arb})" if arb else "") + (f": {d}" if d else "")
        for ref, change, arb, d in sorted(ch.reference_changes)
    ] or ["- (无 none)"]
    return "\n".join(lines) + "\n"


def docs(inp: PackageInput) -> dict[str, Any]:
    """docs/: each file's name and content (JSON-able or text)."""
    rule_zh, rule_en = match_rule_text(inp.protocol)
    definition = inp.schema.get("definition", inp.schema)
    task = "\n".join(
        [
            f"# 任务说明 Task: {inp.title or inp.dataset_id}",
            "",
            f"{inp.description or '-'}",
            "",
            f"模态 Modality: {inp.modality}; 部位 Body part: {inp.body_part or '-'}",
            "",
            "病灶类型 Finding types:",
            "",
            *[
                f"- `{t['key']}`: {t.get('label', {}).get('zh-hans', '')} / "
                f"{t.get('label', {}).get('en', t['key'])}"
                for t in definition.get("finding_types", [])
            ],
            "",
        ]
    )
    return {
        "docs/task.md": task,
        "docs/annotation_guideline.json": {
            "schema_key": inp.schema.get("key", ""),
            "schema_version": inp.schema.get("version", ""),
            "schema_name": inp.schema.get("name", ""),
            "definition": definition,
        },
        "docs/qc_plan.json": inp.qc_profile,
        "docs/match_rule.json": {
            "rule": inp.protocol.get("match_rule", ""),
            "threshold": inp.protocol.get("match_threshold"),
            "size_tolerance": inp.protocol.get("size_tolerance"),
            "description_zh": rule_zh,
            "description_en": rule_en,
        },
        "docs/reading_protocol.json": inp.protocol,
        "docs/deidentification.json": inp.deid_profile,
        "docs/measurements.json": measurements.document(inp),
        **({fundus.PHOTOS_DOC: fundus.parameters()} if fundus.applies(inp) else {}),
    }
