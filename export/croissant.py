"""croissant.json: the package described in MLCommons Croissant 1.0.

Every CSV table is a FileObject (with its sha256) and a RecordSet whose fields
are the table's columns, typed from the data dictionary; the DICOM, NIfTI and
XML folders, the COCO files and the photographs (one set per pixel format) are
FileSets. Written after the tables, since it hashes them.
"""

from __future__ import annotations

import csv
import hashlib
import io
from pathlib import Path

from export.dictionary import COLUMNS, attribute_rows
from export.files import dumps
from export.model import PackageInput

CONTEXT = {
    "@language": "en",
    "@vocab": "https://schema.org/",
    "citeAs": "cr:citeAs",
    "column": "cr:column",
    "conformsTo": "dct:conformsTo",
    "cr": "http://mlcommons.org/croissant/",
    "rai": "http://mlcommons.org/croissant/RAI/",
    "data": {"@id": "cr:data", "@type": "@json"},
    "dataType": {"@id": "cr:dataType", "@type": "@vocab"},
    "dct": "http://purl.org/dc/terms/",
    "examples": {"@id": "cr:examples", "@type": "@json"},
    "extract": "cr:extract",
    "field": "cr:field",
    "fileProperty": "cr:fileProperty",
    "fileObject": "cr:fileObject",
    "fileSet": "cr:fileSet",
    "format": "cr:format",
    "includes": "cr:includes",
    "isLiveDataset": "cr:isLiveDataset",
    "jsonPath": "cr:jsonPath",
    "key": "cr:key",
    "md5": "cr:md5",
    "parentField": "cr:parentField",
    "path": "cr:path",
    "recordSet": "cr:recordSet",
    "references": "cr:references",
    "regex": "cr:regex",
    "repeated": "cr:repeated",
    "replace": "cr:replace",
    "sc": "https://schema.org/",
    "separator": "cr:separator",
    "source": "cr:source",
    "subField": "cr:subField",
    "transform": "cr:transform",
}
TYPES = {"integer": "sc:Integer", "number": "sc:Float", "boolean": "sc:Boolean"}
FILE_SETS = {
    "annotations/dicom": ("dicom-objects", "application/dicom", "**/*.dcm"),
    "annotations/lidc_xml": ("lidc-xml", "application/xml", "**/*.xml"),
    "annotations/nnunet": ("nnunet-nifti", "application/gzip", "**/*.nii.gz"),
    "images": ("images", "application/dicom", "**/*.dcm"),
    "annotations/coco": ("coco-json", "application/json", "**/*.json"),
}
# photographs in their source pixel format (export/fundus.py), one FileSet per format
PHOTO_SETS = (
    ("photos-jpeg", "image/jpeg", "*.jpg"),
    ("photos-png", "image/png", "*.png"),
    ("photos-tiff", "image/tiff", "*.tif"),
)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _ident(rel: str) -> str:
    return rel.replace("/", "-").replace(".", "-")


def document(root: Path, inp: PackageInput) -> dict:
    attrs = attribute_rows(inp)
    distribution, record_sets = [], []
    for path in sorted(root.rglob("*.csv")):
        rel = path.relative_to(root).as_posix()
        if rel.startswith(("images/", "annotations/nnunet")):
            continue
        file_id = _ident(rel)
        distribution.append(
            {
                "@type": "cr:FileObject",
                "@id": file_id,
                "name": file_id,
                "contentUrl": rel,
                "encodingFormat": "text/csv",
                "sha256": _sha256(path),
            }
        )
        header = next(csv.reader(io.StringIO(path.read_text(encoding="utf-8-sig"))), [])
        fields = []
        for col in header:
            kind = COLUMNS.get(col, ("text",))[0] if col not in attrs else "text"
            fields.append(
                {
                    "@type": "cr:Field",
                    "@id": f"{file_id}/{col}",
                    "name": col,
                    "dataType": TYPES.get(kind, "sc:Text"),
                    "source": {"fileObject": {"@id": file_id}, "extract": {"column": col}},
                }
            )
        record_sets.append(
            {"@type": "cr:RecordSet", "@id": f"rs-{file_id}", "name": rel, "field": fields}
        )
    for folder, (set_id, mime, pattern) in FILE_SETS.items():
        if (root / folder).is_dir():
            distribution.append(
                {
                    "@type": "cr:FileSet",
                    "@id": set_id,
                    "name": set_id,
                    "encodingFormat": mime,
                    "includes": f"{folder}/{pattern}",
                }
            )
    for set_id, mime, pattern in PHOTO_SETS:
        if any((root / "photos").glob(f"*/{pattern}")):
            distribution.append(
                {
                    "@type": "cr:FileSet",
                    "@id": set_id,
                    "name": set_id,
                    "encodingFormat": mime,
                    "includes": f"photos/**/{pattern}",
                }
            )
    return {
        "@context": CONTEXT,
        "@type": "sc:Dataset",
        "name": inp.package_name,
        "description": inp.description or inp.title or inp.dataset_id,
        "conformsTo": "http://mlcommons.org/croissant/1.0",
        "url": f"https://refset.invalid/{inp.dataset_id}/{inp.version}",
        "license": "https://refset.invalid/licence-see-readme",
        "version": inp.version,
        "datePublished": inp.frozen_at[:10],
        "citeAs": f"{inp.title or inp.dataset_id} v{inp.version}, {inp.tool_version}",
        "distribution": distribution,
        "recordSet": record_sets,
    }


def write(out, inp: PackageInput, prefix: str = "") -> None:
    out.write_text(f"{prefix}croissant.json", dumps(document(out.root, inp)))
