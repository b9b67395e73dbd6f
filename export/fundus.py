"""The fundus parts of a package: photographs in their original pixel format, grades.

A version whose images are 2-D photographs (Ophthalmic Photography, modality OP,
or VL Photographic, XC; or a project on the shipped ``fundus-dr`` schema) gets,
next to the de-identified DICOM objects under images/:

- ``photos/<case_id>/<image_id>.<jpg|png|tif>``: each photograph re-encoded from
  the DICOM object's pixels in the pixel format its source file had, named by the
  package's identifiers (never the original file name, which RefSet never stored).
  ``image_id`` is ``<case_id>-<n>``, n counting the case's photographs from 1 in
  slice order. Nothing but pixels is written: no EXIF, XMP, IPTC, ICC profile,
  JFIF/APPn segment, comment, PNG text chunk or TIFF tag beyond the ten that
  describe the image (sizes, samples, compression, photometric, strips).
  PNG and TIFF (deflate) are lossless: their pixels equal the DICOM's, bit for bit.
  A JPEG source is written as JPEG at quality 95 with no chroma subsampling (4:4:4):
  JPEG was lossy at the camera already, and the source bitstream is not kept (the
  import stores decoded pixels, imaging/photo/convert.py), so the choice is a second
  lossy generation in the format users expect, or a lossless JPEG (ITU T.81 process
  14) that Pillow cannot write and most viewers and training pipelines cannot read.
  Users who need the exact pixels have them in the DICOM object (and as lossless
  PNG would misstate the source as lossless). The PSNR of each re-encoded JPEG
  against the DICOM pixels is in tables/photos.csv; the verifier refuses one below
  ``JPEG_MIN_PSNR_DB``.
- The source format: the import records the file format each image arrived in
  (``InstanceRecord.source_format``, from Instance.source_format through the
  freeze snapshot: JPEG, PNG, TIFF or DICOM). A photograph is re-encoded as JPEG
  when it came as a JPEG file or when its DICOM object says its pixels went
  through lossy JPEG (LossyImageCompression 01 with method ISO_10918_1, or a
  lossy JPEG transfer syntax: lossy pixels are never passed off as a lossless
  file); otherwise in the PNG or TIFF it came as, and as PNG when it came as a
  DICOM object or was imported before the format was recorded.
  ``tables/photos.csv`` has both: ``source_file`` (the recorded file format,
  empty when not recorded) and ``source_format`` (the pixel format the
  photograph is re-encoded in).
- ``tables/photos.csv`` (one row per photograph: laterality, sizes, formats,
  paths, hashes, PSNR), ``annotations/fundus_grades.csv`` (one row per photograph:
  patient, visit, eye, the reference DR grade or ungradable, DMO, referable DR,
  other findings, vertical cup-to-disc ratio, how each was reached) and
  ``annotations/fundus_reads.csv`` (one row per read: the reader's answers and
  derived fields, lesion counts), all described in the data dictionary.

Lesion shapes and disc/cup outlines are also in DICOM Segmentation objects
(export/fundus_seg.py: per read and per photograph's reference, the reference
table's seg_ref), in annotations/coco/ (polygons as COCO segmentation, points as
keypoints) and in the DICOM SR (image coordinates).

Laterality is the one recorded at import (Instance.laterality: the DICOM object's
ImageLaterality, else its series' Laterality; R -> OD, L -> OS), read from the
object's header for a version frozen before it was recorded. The visit is the
de-identified Study Instance UID (one study per patient and visit at import).

Plain Python: no Django.
"""

from __future__ import annotations

import hashlib
import io
import math
import struct
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import pydicom
from PIL import Image
from pydicom.multival import MultiValue
from pydicom.pixels import pixel_array

from export.model import CaseRecord, InstanceRecord, PackageInput, SeriesRecord
from export.nifdc_tables import image_path

PHOTO_MODALITIES = frozenset({"OP", "XC"})
FUNDUS_SCHEMAS = frozenset({"fundus-dr"})
EXTENSIONS = {"JPEG": ".jpg", "PNG": ".png", "TIFF": ".tif"}
JPEG_QUALITY = 95
JPEG_SUBSAMPLING = 0  # 4:4:4
JPEG_MIN_PSNR_DB = 38.0
TIFF_COMPRESSION = "tiff_adobe_deflate"
# zlib level 1 rather than Pillow's default 6: the photos part 2.8x faster for 17 % more
# PNG bytes (bench/export.py --photos 12 --photo-size 1024); the package zip deflates again
PNG_COMPRESS_LEVEL = 1
# The TIFF tags Pillow writes for an image and nothing else (TIFF 6.0 baseline numbers).
TIFF_IMAGE_TAGS = frozenset({256, 257, 258, 259, 262, 273, 277, 278, 279, 284, 317})
LOSSY_JPEG_SYNTAXES = frozenset(
    {"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.203"}
)
LATERALITY = {"R": "OD", "L": "OS"}
GRADE_FIELD, DMO_FIELD, OTHER_FIELD = "dr_grade", "dmo", "other_findings"
REFERABLE, CDR = "referable_dr", "vertical_cdr"
ANATOMY_TYPES = frozenset({"optic_disc", "optic_cup"})

PHOTOS_TABLE = "tables/photos.csv"
GRADES_TABLE = "annotations/fundus_grades.csv"
READS_TABLE = "annotations/fundus_reads.csv"
PHOTOS_DOC = "docs/photos.json"

PHOTOS_HEADER = [
    "image_id", "case_id", "series_uid", "sop_instance_uid", "laterality", "rows", "columns",
    "photometric", "source_file", "source_format", "lossy_source", "photo_format", "photo_path",
    "photo_sha256", "dicom_path", "psnr_db",
]  # fmt: skip
GRADES_HEADER = [
    "image_id", "case_id", "sop_instance_uid", "patient_pseudo_id", "visit_uid", "laterality",
    "split", "dr_grade", "dmo", "referable_dr", "other_findings", "vertical_cdr",
    "grade_decision", "dmo_decision", "label_decision", "arbitration_id", "reference_revision",
    "n_reads", "reader_grades", "photo_path", "dicom_path", "retired",
]  # fmt: skip
READS_HEADER = [
    "read_id", "case_id", "series_uid", "reader_pseudo_id", "phase", "started_at",
    "submitted_at", "dr_grade", "dmo", "referable_dr", "other_findings", "vertical_cdr",
    "n_lesions", "lesion_counts", "disc_outlined", "cup_outlined", "tool_version",
]  # fmt: skip


def applies(inp: PackageInput) -> bool:
    """A photograph version: every series OP/XC, or the fundus schema."""
    series = [s for _, s in inp.series()]
    if not series:
        return False
    return inp.schema.get("key") in FUNDUS_SCHEMAS or all(
        s.modality in PHOTO_MODALITIES for s in series
    )


# --- the DICOM side ------------------------------------------------------------------


@dataclass(frozen=True)
class PhotoHeader:
    laterality: str  # OD | OS | ""
    rows: int
    columns: int
    photometric: str
    lossy: bool
    transfer_syntax: str


def header(path: str) -> PhotoHeader:
    """What the tables need from a DICOM object's header (pixels not read)."""
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    side = str(ds.get("ImageLaterality", "") or ds.get("Laterality", "") or "").upper()
    syntax = str(getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "") or "")
    method = ds.get("LossyImageCompressionMethod", "")
    methods = [str(m) for m in method] if isinstance(method, MultiValue) else [str(method)]
    lossy = (str(ds.get("LossyImageCompression", "")) == "01" and "ISO_10918_1" in methods) or (
        syntax in LOSSY_JPEG_SYNTAXES
    )
    return PhotoHeader(
        laterality=LATERALITY.get(side, ""),
        rows=int(ds.Rows),
        columns=int(ds.Columns),
        photometric=str(ds.get("PhotometricInterpretation", "")),
        lossy=lossy,
        transfer_syntax=syntax,
    )


def dicom_pixels(path: str) -> np.ndarray:
    """The object's first frame as uint8 rows x cols x 3 (RGB) or rows x cols (grey);
    YBR colour (a JPEG transfer syntax) is converted to RGB by pydicom (as_rgb)."""
    arr = pixel_array(path, index=0, as_rgb=True)
    if arr.dtype != np.uint8:
        raise ValueError(f"{path}: {arr.dtype} pixels; photographs are 8-bit")
    return np.ascontiguousarray(arr)


@lru_cache(maxsize=8192)
def instance_header(inst: InstanceRecord) -> PhotoHeader:
    """header() of an instance, read once per export (keyed by path and sha256 too)."""
    return header(inst.path)


SOURCE_FILES = ("JPEG", "PNG", "TIFF", "DICOM")


def source_file(inst: InstanceRecord) -> str:
    """The file format the image arrived in, as recorded at import ("" when not)."""
    recorded = (inst.source_format or "").upper()
    return recorded if recorded in SOURCE_FILES else ""


def source_format(inst: InstanceRecord) -> str:
    """The pixel format a photograph is re-encoded in (see the module)."""
    recorded = source_file(inst)
    if recorded == "JPEG" or instance_header(inst).lossy:
        return "JPEG"  # lossy pixels are never passed off as a lossless file
    return recorded if recorded in EXTENSIONS else "PNG"


def laterality(inst: InstanceRecord, head: PhotoHeader) -> str:
    """OD / OS / "": as recorded at import, else from the object's header."""
    if inst.laterality is not None:
        return LATERALITY.get(inst.laterality, "")
    return head.laterality


# --- writing pixels without metadata ---------------------------------------------------


def strip_jpeg_segments(data: bytes) -> bytes:
    """The JPEG without its APPn (JFIF, EXIF, XMP, ICC, IPTC...) and COM segments."""
    if data[:2] != b"\xff\xd8":
        raise ValueError("not a JPEG stream")
    out, pos = bytearray(b"\xff\xd8"), 2
    while pos < len(data):
        if data[pos] != 0xFF:
            raise ValueError(f"JPEG marker expected at byte {pos}")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xDA:  # start of scan: the rest is entropy-coded data and EOI
            out += data[pos:]
            return bytes(out)
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        segment = data[pos : pos + 2 + length]
        if not (0xE0 <= marker <= 0xEF or marker == 0xFE):
            out += segment
        pos += 2 + length
    raise ValueError("JPEG stream without a scan")


def encode(pixels: np.ndarray, fmt: str) -> bytes:
    image = Image.fromarray(pixels, "RGB" if pixels.ndim == 3 else "L")
    buf = io.BytesIO()
    if fmt == "JPEG":
        image.save(buf, "JPEG", quality=JPEG_QUALITY, subsampling=JPEG_SUBSAMPLING, optimize=False)
        return strip_jpeg_segments(buf.getvalue())
    if fmt == "TIFF":
        image.save(buf, "TIFF", compression=TIFF_COMPRESSION)
        return buf.getvalue()
    image.save(buf, "PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buf.getvalue()


def decode(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        return np.asarray(im)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


# --- the photographs and their identifiers ---------------------------------------------


@dataclass(frozen=True)
class Photo:
    case: CaseRecord
    series: SeriesRecord
    inst: InstanceRecord
    image_id: str
    head: PhotoHeader
    source_format: str  # the pixel format it is re-encoded in: JPEG | PNG | TIFF
    source_file: str = ""  # the file format it arrived in, when recorded
    laterality: str = ""  # OD | OS | ""

    @property
    def path(self) -> str:
        return f"photos/{self.case.case_id}/{self.image_id}{EXTENSIONS[self.source_format]}"

    @property
    def dicom_path(self) -> str:
        return image_path(self.case.case_id, self.series.series_uid, self.inst.sop_instance_uid)


def photos(inp: PackageInput) -> list[Photo]:
    """Every photograph of the version, by case and slice order."""
    out = []
    for case in sorted(inp.cases, key=lambda c: c.case_id):
        n = 0
        for s in sorted(case.series, key=lambda s: s.series_uid):
            for inst in sorted(s.instances, key=lambda i: i.slice_index):
                n += 1
                head, fmt = instance_header(inst), source_format(inst)
                out.append(
                    Photo(
                        case, s, inst, f"{case.case_id}-{n}", head, fmt,
                        source_file(inst), laterality(inst, head),
                    )
                )  # fmt: skip
    return out


def photo_for(inp: PackageInput) -> dict[tuple[str, int], Photo]:
    """(series_uid, slice_index) -> its photograph (a finding's shape names both)."""
    return {(p.series.series_uid, p.inst.slice_index): p for p in photos(inp)}


# --- tables ------------------------------------------------------------------------------


def _schema_keys(inp: PackageInput, kind: str) -> list[str]:
    definition = inp.schema.get("definition", inp.schema)
    return [t["key"] for t in definition.get(kind, [])]


def _reference_fields(inp: PackageInput, case_id: str) -> dict[str, Any]:
    ref = inp.reference_labels.get(case_id)
    values = dict(inp.case_labels.get(case_id, {}))
    derived = dict(ref.derived) if ref else {}
    return {
        "dr_grade": values.get(GRADE_FIELD),
        "dmo": values.get(DMO_FIELD),
        "referable_dr": derived.get(REFERABLE),
        "other_findings": values.get(OTHER_FIELD) or [],
        "vertical_cdr": derived.get(CDR),
        "grade_decision": ref.field_decision(GRADE_FIELD) if ref else "",
        "dmo_decision": ref.field_decision(DMO_FIELD) if ref else "",
        "label_decision": ref.decision if ref else "",
        "arbitration_id": ref.arbitration_id if ref else "",
        "reference_revision": ref.revision if ref else None,
    }


def grades(inp: PackageInput, written: dict[str, str] | None = None) -> tuple[list, list]:
    reads_of: dict[str, list] = {}
    for read in sorted(inp.reads, key=lambda r: (r.phase, r.reader_pseudo_id, r.read_id)):
        reads_of.setdefault(read.case_id, []).append(read)
    rows = []
    for p in photos(inp):
        c = p.case
        ref = _reference_fields(inp, c.case_id) if not c.retired else {}
        reads = reads_of.get(c.case_id, [])
        reader_grades = [
            f"{r.reader_pseudo_id}@{r.phase}:{r.case_labels.get(GRADE_FIELD, '')}" for r in reads
        ]
        rows.append(
            [
                p.image_id, c.case_id, p.inst.sop_instance_uid, c.patient_pseudo_id,
                p.series.study_uid, p.laterality, c.split, ref.get("dr_grade"),
                ref.get("dmo"), ref.get("referable_dr"), ref.get("other_findings"),
                ref.get("vertical_cdr"), ref.get("grade_decision", ""),
                ref.get("dmo_decision", ""), ref.get("label_decision", ""),
                ref.get("arbitration_id", ""), ref.get("reference_revision"), len(reads),
                reader_grades, (written or {}).get(p.image_id, ""),
                p.dicom_path if inp.include_images else "", c.retired,
            ]
        )  # fmt: skip
    return GRADES_HEADER, rows


def reads(inp: PackageInput) -> tuple[list, list]:
    lesion_types = [k for k in _schema_keys(inp, "finding_types") if k not in ANATOMY_TYPES]
    rows = []
    for r in sorted(inp.reads, key=lambda r: (r.case_id, r.phase, r.read_id)):
        counts: dict[str, int] = {}
        for f in r.findings:
            counts[f.finding_type] = counts.get(f.finding_type, 0) + 1
        lesions = {k: v for k, v in counts.items() if k not in ANATOMY_TYPES}
        order = lesion_types + sorted(set(lesions) - set(lesion_types))
        rows.append(
            [
                r.read_id, r.case_id, r.series_uid, r.reader_pseudo_id, r.phase, r.started_at,
                r.submitted_at, r.case_labels.get(GRADE_FIELD), r.case_labels.get(DMO_FIELD),
                r.derived.get(REFERABLE), r.case_labels.get(OTHER_FIELD) or [],
                r.derived.get(CDR), sum(lesions.values()),
                [f"{k}:{lesions[k]}" for k in order if k in lesions],
                counts.get("optic_disc", 0) > 0, counts.get("optic_cup", 0) > 0,
                r.tool_version,
            ]
        )  # fmt: skip
    return READS_HEADER, rows


def headers(inp: PackageInput) -> dict[str, list[str]]:
    if not applies(inp):
        return {}
    return {PHOTOS_TABLE: PHOTOS_HEADER, GRADES_TABLE: GRADES_HEADER, READS_TABLE: READS_HEADER}


def summary(inp: PackageInput) -> dict[str, Any]:
    """manifest.json's "photographs": how many, in which source formats, where."""
    formats: dict[str, int] = {}
    files: dict[str, int] = {}
    for p in photos(inp):
        formats[p.source_format] = formats.get(p.source_format, 0) + 1
        arrived = p.source_file or "not recorded"
        files[arrived] = files.get(arrived, 0) + 1
    return {
        "count": sum(formats.values()),
        "source_formats": dict(sorted(formats.items())),
        "source_files": dict(sorted(files.items())),
        "folder": "photos/" if inp.include_images else None,
        "table": PHOTOS_TABLE,
        "grades": GRADES_TABLE,
        "reads": READS_TABLE,
        "parameters": PHOTOS_DOC,
    }


def parameters() -> dict[str, Any]:
    """docs/photos.json: how the photographs were written (and why)."""
    return {
        "folder": "photos/<case_id>/<image_id>.<jpg|png|tif>",
        "table": PHOTOS_TABLE,
        "source_format_rule": {
            "en": "JPEG when the photograph came as a JPEG file (source_file, recorded at "
            "import) or its DICOM object records lossy JPEG compression "
            "(LossyImageCompression 01, method ISO_10918_1, or a lossy JPEG transfer "
            "syntax); else the PNG or TIFF it came as; else (it came as DICOM, or was "
            "imported before the format was recorded) PNG",
            "zh": "照片以 JPEG 文件导入（source_file，导入时记录）或其 DICOM 对象记录了有损 JPEG "
            "压缩（LossyImageCompression 01，方法 ISO_10918_1，或有损 JPEG 传输语法）时为 JPEG；"
            "否则为导入时的 PNG 或 TIFF；以 DICOM 导入或导入时尚未记录格式的为 PNG",
        },
        "metadata": {
            "en": "none: no EXIF, XMP, IPTC, ICC profile, APPn or COM segment, PNG text "
            "chunk, or TIFF tag beyond those describing the image",
            "zh": "无：不含 EXIF、XMP、IPTC、ICC 配置文件、APPn 或 COM 段、PNG 文本块，"
            "TIFF 仅含描述图像本身的标签",
        },
        "png": {"lossless": True, "compress_level": PNG_COMPRESS_LEVEL},
        "tiff": {"lossless": True, "compression": TIFF_COMPRESSION},
        "jpeg": {
            "lossless": False,
            "quality": JPEG_QUALITY,
            "chroma_subsampling": "4:4:4",
            "min_psnr_db": JPEG_MIN_PSNR_DB,
            "why_not_lossless": {
                "en": "the source JPEG was already lossy and its bitstream is not kept (the "
                "import stores the decoded pixels); lossless JPEG (ITU-T T.81 process 14) is "
                "unreadable by most viewers and pipelines, and a PNG would misstate the source "
                "as lossless. The exact pixels are in the DICOM object.",
                "zh": "源 JPEG 本身即为有损压缩，导入时仅保存解码后的像素而不保留原码流；无损 JPEG"
                "（ITU-T T.81 过程 14）多数阅片软件与训练流程无法读取，改存 PNG 又会误称来源无损。"
                "精确像素见 DICOM 对象。",
            },
        },
    }


def write(out, inp: PackageInput, tick=None) -> None:
    """photos/, tables/photos.csv and the grades and reads tables (docs/photos.json is
    datasheet.docs')."""
    written: dict[str, str] = {}
    rows = []
    for p in photos(inp):
        path, sha, quality = "", "", None
        if inp.include_images:
            pixels = dicom_pixels(p.inst.path)
            data = encode(pixels, p.source_format)
            back = decode(data)
            if p.source_format == "JPEG":
                quality = round(psnr(pixels, back), 2)
                if quality < JPEG_MIN_PSNR_DB:
                    raise ValueError(f"{p.image_id}: JPEG PSNR {quality} dB below the bound")
            elif not np.array_equal(back, pixels):
                raise ValueError(f"{p.image_id}: {p.source_format} pixels differ from the DICOM")
            out.write_bytes(p.path, data)
            path, sha = p.path, hashlib.sha256(data).hexdigest()
            written[p.image_id] = path
        rows.append(
            [
                p.image_id, p.case.case_id, p.series.series_uid, p.inst.sop_instance_uid,
                p.laterality, p.head.rows, p.head.columns, p.head.photometric,
                p.source_file, p.source_format, p.head.lossy,
                p.source_format if path else "", path, sha,
                p.dicom_path if inp.include_images else "",
                None if quality is None or math.isinf(quality) else float(quality),
            ]
        )  # fmt: skip
        if tick:
            tick()
    out.write_csv(PHOTOS_TABLE, PHOTOS_HEADER, rows)
    out.write_csv(GRADES_TABLE, *grades(inp, written))
    out.write_csv(READS_TABLE, *reads(inp))
