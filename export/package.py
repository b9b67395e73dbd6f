"""Writing a package: the format registry, atomic directories, bags and zips.

`write_package(inp, out_dir, fmt)` builds `<out_dir>/<dataset>_v<version>/`
(for one format alone, `<dataset>_v<version>_<format>/`) inside a hidden
`.part-*` directory next to it and renames it into place only when every file,
MANIFEST.sha256 and manifest.json are written: a killed export leaves a
`.part-*` directory (never a complete-looking package), and the next run
removes it and starts again. A package already in place that verifies is
returned as it is.

EXPORTERS is the explicit registry: format -> (writer, folder inside the
package). `nifdc` writes every part of EXPORT_SPEC.md and calls the others
into their folders.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

from export import (
    coco,
    croissant,
    datasheet,
    dictionary,
    fundus,
    fundus_seg,
    lidc_xml,
    luna16,
    nnunet,
    seg,
    sr,
)
from export.files import PackageDir, dumps, epoch
from export.manifest import MANIFEST, MANIFEST_JSON, manifest_json, manifest_text
from export.model import PackageInput
from export.nifdc_tables import image_path, images_index, write_tables
from export.verify import verify

Progress = Callable[[str, int, int], None]  # (step, done, total)


class ExportError(Exception):
    """The package cannot be written as asked (message names the reason)."""


def _agreement(out: PackageDir, inp: PackageInput) -> None:
    stats = inp.agreement or {
        "available": False,
        "reason": "no agreement report was computed for this version",
    }
    out.write_json("qc/agreement_stats.json", stats)
    for name, data in sorted(inp.agreement_plots.items()):
        out.write_bytes(f"qc/plots/{name}", data)


def _images(out: PackageDir, inp: PackageInput, tick) -> None:
    header, rows = images_index(inp)
    out.write_csv("images/images_index.csv", header, rows)
    if not inp.include_images:
        return
    for case, s in sorted(inp.series(), key=lambda cs: (cs[0].case_id, cs[1].series_uid)):
        for inst in sorted(s.instances, key=lambda i: i.slice_index):
            out.copy_file(image_path(case.case_id, s.series_uid, inst.sop_instance_uid), inst.path)
        tick()


def write_nifdc(out: PackageDir, inp: PackageInput, progress: Progress | None = None) -> None:
    photographs = fundus.applies(inp)
    steps = len(inp.series()) * 2 + len(inp.reads) * 2 + len(inp.cases) + 10
    if photographs:
        steps += sum(len(s.instances) for _, s in inp.series())
    done = [0]

    def tick(step: str = "") -> None:
        done[0] += 1
        if progress:
            progress(step, min(done[0], steps), steps)

    out.write_text("README.md", datasheet.readme(inp))
    out.write_text("CHANGELOG.md", datasheet.changelog(inp))
    for rel, content in datasheet.docs(inp).items():
        if isinstance(content, str):
            out.write_text(rel, content)
        else:
            out.write_json(rel, content)
    dictionary.write(out, inp)
    write_tables(out, inp)
    _agreement(out, inp)
    tick("tables")
    luna16.write(out, inp, prefix="annotations/luna16/")
    lidc_xml.write(out, inp, prefix="annotations/lidc_xml/")
    tick("lidc")
    # photographs: their own SEG builder (fundus_seg.py says why), and COCO below
    writer = fundus_seg.write if photographs else seg.write
    writer(out, inp, prefix="annotations/dicom/SEG/", progress=lambda: tick("seg"))
    sr.write(out, inp, prefix="annotations/dicom/SR/", progress=lambda: tick("sr"))
    if coco.applies(inp):
        coco.write(out, inp, prefix="annotations/coco/")
    else:
        nnunet.write(out, inp, prefix="annotations/nnunet/", progress=lambda: tick("nnunet"))
    _images(out, inp, lambda: tick("images"))
    if photographs:
        fundus.write(out, inp, lambda: tick("photos"))
    croissant.write(out, inp)


def _coco_alone(out: PackageDir, inp: PackageInput, progress=None) -> None:
    if not coco.applies(inp):
        raise ExportError("COCO is for 2D projects (one image per series); this version is 3D.")
    coco.write(out, inp)


EXPORTERS: dict[str, Callable[..., None]] = {
    "nifdc": write_nifdc,
    "dicom-seg": lambda out, inp, progress=None: (
        fundus_seg.write if fundus.applies(inp) else seg.write
    )(out, inp),
    "dicom-sr": lambda out, inp, progress=None: sr.write(out, inp),
    "lidc-xml": lambda out, inp, progress=None: lidc_xml.write(out, inp),
    "luna16": lambda out, inp, progress=None: luna16.write(out, inp),
    "nnunet": lambda out, inp, progress=None: nnunet.write(out, inp),
    "coco": _coco_alone,
    "croissant": lambda out, inp, progress=None: (
        write_tables(out, inp),
        dictionary.write(out, inp),
        croissant.write(out, inp),
    ),
}


def package_name(inp: PackageInput, fmt: str) -> str:
    return inp.package_name if fmt == "nifdc" else f"{inp.package_name}_{fmt}"


def _bag(root: Path, inp: PackageInput) -> None:
    import bagit  # optional format; imported only when a bag is asked for

    info = {
        "Bagging-Date": inp.frozen_at[:10],
        "External-Identifier": inp.package_name,
        "Source-Organization": "RefSet",
        "Bag-Software-Agent": inp.tool_version or "RefSet",
    }
    bag = bagit.make_bag(str(root), bag_info=info, checksums=["sha256"], processes=1)
    if not bag.is_valid():
        raise ExportError("the BagIt bag did not validate")
    mtime = epoch(inp.frozen_at)
    for path in root.rglob("*"):
        os.utime(path, (mtime, mtime))


def write_package(
    inp: PackageInput,
    out_dir: str | Path,
    fmt: str = "nifdc",
    *,
    bag: bool = False,
    progress: Progress | None = None,
) -> Path:
    if fmt not in EXPORTERS:
        raise ExportError(f"unknown format {fmt!r}; formats: {', '.join(sorted(EXPORTERS))}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    name = package_name(inp, fmt) + ("_bag" if bag else "")
    final = out_dir / name
    if final.exists():
        if not verify(final):
            return final
        raise ExportError(f"{final} exists and does not verify; move it away first")
    for stale in out_dir.glob(f".part-{name}-*"):
        shutil.rmtree(stale, ignore_errors=True)
    work = Path(tempfile.mkdtemp(prefix=f".part-{name}-", dir=out_dir))
    try:
        root = work / name
        root.mkdir()
        out = PackageDir(root, epoch(inp.frozen_at))
        EXPORTERS[fmt](out, inp, progress=progress)
        out.write_text(MANIFEST, manifest_text(root))
        out.write_text(MANIFEST_JSON, dumps(manifest_json(root, inp, [fmt])))
        if bag:
            _bag(root, inp)
        os.utime(root, (out.mtime, out.mtime))
        os.rename(root, final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return final


ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def zip_package(root: Path, target: Path) -> Path:
    """A deterministic zip of the package (sorted entries, fixed times), written atomically."""
    root, target = Path(root), Path(target)
    part = target.with_name(f".part-{target.name}")
    with zipfile.ZipFile(part, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            arcname = f"{root.name}/{path.relative_to(root).as_posix()}"
            info = zipfile.ZipInfo(arcname, date_time=ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            with open(path, "rb") as src, zf.open(info, "w") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
    os.replace(part, target)
    return target
