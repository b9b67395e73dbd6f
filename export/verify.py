"""Checking a package: every file against MANIFEST.sha256, MANIFEST against manifest.json.

`verify(root)` returns the problems found, first the first file that differs;
an empty list means the package is whole. A BagIt bag (bagit.txt at the top)
is checked in its data/ folder.
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
    return problems
