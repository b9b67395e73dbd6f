"""Checking a package: every file against MANIFEST.sha256, MANIFEST against manifest.json.

`verify(root)` returns the problems found, first the first file that differs;
an empty list means the package is whole. A BagIt bag (bagit.txt at the top)
is checked in its data/ folder.

A package with photographs (tables/photos.csv, export/fundus.py) is also checked
photograph by photograph: the file decodes as the format the table says, carries
no metadata (no EXIF, XMP, ICC profile, comment, text chunk, APPn segment, TIFF
tag beyond the image's), has the DICOM object's size, and its pixels equal the
DICOM's (PNG, TIFF) or come within fundus.JPEG_MIN_PSNR_DB of them (JPEG); the
grades table has one row per photograph, and so has the COCO reference's image
list.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from export.manifest import MANIFEST, MANIFEST_JSON, file_sha256, listed_files


def package_root(path: Path) -> Path:
    path = Path(path)
    if (path / "bagit.txt").exists() and (path / "data").is_dir():
        return path / "data"
    return path


def verify(path: Path) -> list[str]:
    root = package_root(path)
    if not (root / MANIFEST).is_file():
        return [f"{MANIFEST}: missing"]
    if not (root / MANIFEST_JSON).is_file():
        return [f"{MANIFEST_JSON}: missing"]
    problems: list[str] = []
    listed: dict[str, str] = {}
    for n, line in enumerate((root / MANIFEST).read_text(encoding="utf-8").splitlines(), 1):
        digest, sep, rel = line.partition("  ")
        if not sep or len(digest) != 64:
            problems.append(f"{MANIFEST}: line {n} is not '<sha256>  <path>'")
            continue
        listed[rel] = digest
    for rel, digest in sorted(listed.items()):
        target = root / rel
        if not target.is_file():
            problems.append(f"{rel}: listed in {MANIFEST} but missing")
        elif file_sha256(target) != digest:
            problems.append(f"{rel}: sha256 differs from {MANIFEST}")
    for rel in listed_files(root):
        if rel not in listed:
            problems.append(f"{rel}: not listed in {MANIFEST}")
    try:
        manifest = json.loads((root / MANIFEST_JSON).read_text(encoding="utf-8"))
    except ValueError as exc:
        return problems + [f"{MANIFEST_JSON}: not JSON ({exc})"]
    if manifest.get("manifest_sha256") != file_sha256(root / MANIFEST):
        problems.append(f"{MANIFEST}: sha256 differs from manifest.json's manifest_sha256")
    if manifest.get("files") != len(listed):
        problems.append(
            f"{MANIFEST_JSON}: says {manifest.get('files')} files, {MANIFEST} lists {len(listed)}"
        )
    cases_csv = root / "tables" / "cases.csv"
    if cases_csv.is_file():
        with open(cases_csv, encoding="utf-8-sig") as fh:
            rows = list(csv.DictReader(fh))
        active = {r["case_id"] for r in rows if r.get("retired") != "true"}
        expected = manifest.get("counts", {}).get("cases")
        if expected is not None and expected != len(active):
            problems.append(
                f"tables/cases.csv: {len(active)} active cases, manifest.json says {expected}"
            )
    if (root / "tables" / "photos.csv").is_file():
        problems += verify_photos(root)
    return problems


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8-sig") as fh:
        return list(csv.DictReader(fh))


def photo_metadata(data: bytes) -> list[str]:
    """What a photograph file carries besides its pixels (empty: nothing)."""
    import io

    from PIL import Image

    from export.fundus import TIFF_IMAGE_TAGS

    found: list[str] = []
    if data[:2] == b"\xff\xd8":
        pos = 2
        while pos + 4 <= len(data) and data[pos] == 0xFF and data[pos + 1] != 0xDA:
            marker = data[pos + 1]
            if 0xE0 <= marker <= 0xEF or marker == 0xFE:
                found.append(f"JPEG segment FF{marker:02X}")
            pos += 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
    with Image.open(io.BytesIO(data)) as im:
        if im.format != "TIFF" and im.getexif():  # a TIFF's own IFD reads as EXIF
            found.append("EXIF")
        for key in ("icc_profile", "exif", "xmp", "XML:com.adobe.xmp", "comment", "photoshop"):
            if im.info.get(key):
                found.append(key)
        if im.format == "PNG":
            found += [f"PNG text {k}" for k in getattr(im, "text", {})]
        if im.format == "TIFF":
            found += [f"TIFF tag {t}" for t in sorted(set(im.tag_v2) - TIFF_IMAGE_TAGS)]
    return found


def verify_photos(root: Path) -> list[str]:
    from export import fundus

    problems: list[str] = []
    photos = _rows(root / "tables" / "photos.csv")
    for row in photos:
        rel = row["photo_path"]
        if not rel:
            continue
        target = root / rel
        if not target.is_file():
            problems.append(f"{rel}: listed in tables/photos.csv but missing")
            continue
        data = target.read_bytes()
        try:
            pixels = fundus.decode(data)
            from PIL import Image

            with Image.open(target) as im:
                fmt = im.format
        except Exception as exc:  # a broken file is a finding, not a crash
            problems.append(f"{rel}: does not decode ({exc})")
            continue
        if fmt != row["photo_format"]:
            problems.append(f"{rel}: is {fmt}, tables/photos.csv says {row['photo_format']}")
        extra = photo_metadata(data)
        if extra:
            problems.append(f"{rel}: carries metadata: {', '.join(extra)}")
        if pixels.shape[:2] != (int(row["rows"]), int(row["columns"])):
            problems.append(f"{rel}: {pixels.shape[:2]} pixels, the DICOM has "
                            f"{row['rows']} x {row['columns']}")  # fmt: skip
            continue
        dicom = root / row["dicom_path"] if row["dicom_path"] else None
        if dicom is None or not dicom.is_file():
            continue
        reference = fundus.dicom_pixels(str(dicom))
        if fmt == "JPEG":
            quality = fundus.psnr(reference, pixels)
            if quality < fundus.JPEG_MIN_PSNR_DB:
                problems.append(f"{rel}: PSNR {quality:.1f} dB against the DICOM, "
                                f"below {fundus.JPEG_MIN_PSNR_DB} dB")  # fmt: skip
        elif reference.shape != pixels.shape or (reference != pixels).any():
            problems.append(f"{rel}: pixels differ from {row['dicom_path']}")
    grades = root / fundus.GRADES_TABLE
    if not grades.is_file():
        problems.append(f"{fundus.GRADES_TABLE}: missing")
    elif len(_rows(grades)) != len(photos):
        problems.append(f"{fundus.GRADES_TABLE}: not one row per photograph")
    coco = root / "annotations" / "coco" / "reference.json"
    if coco.is_file():
        images = json.loads(coco.read_text(encoding="utf-8")).get("images", [])
        if len(images) != len(photos):
            problems.append("annotations/coco/reference.json: not one image per photograph")
    return problems
