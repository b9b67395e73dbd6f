"""How long the whole NIFDC package takes for a version of synthetic CT cases.

    .venv/bin/python bench/export.py [--cases 100] [--slices 32] [--matrix 256] [--repeat 1]

One run, three measurements over the same version (cases x 3 reads each, two
outlined nodules per read plus a point mark; the reference with two nodules
and one excluded finding per case):

(floor)    copying the same image files into a fresh directory: the least any
           package that ships its images must do;
(SEG only) building and writing only the DICOM SEG objects with highdicom (one
           per read and one reference per series), as a SEG-only export would;
(package)  export.package.write_package(..., "nifdc"): every part of
           EXPORT_SPEC.md (tables, docs, dictionary, LUNA16, LIDC XML, SEG, SR,
           nnU-Net, images, croissant, MANIFEST, manifest.json).

Goal (issue 14): the whole package within 3x of SEG only. Generating the
synthetic series is not timed. Machines are shared: quote the ratios.

    .venv/bin/python bench/export.py --photos 30 [--photo-size 1536] [--repeat 1]

A fundus version instead (issue 18): N synthetic fundus photographs (a third each
JPEG, PNG and TIFF at the source, wrapped as the photo import wraps them; the
import does not record which lossless format, so TIFF sources come out as PNG), no
reads; (floor) copying the DICOM objects, (photos) export.fundus.write alone:
decoding each DICOM, re-encoding it in its source format without metadata and
checking it (pixel equality or PSNR), the photos/grades/reads tables; (package)
the whole NIFDC package.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from export import seg  # noqa: E402
from export.files import PackageDir  # noqa: E402
from export.package import write_package  # noqa: E402
from tests.export.builders import make_input  # noqa: E402


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=100)
    parser.add_argument("--slices", type=int, default=32)
    parser.add_argument("--matrix", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--photos", type=int, default=0, help="a fundus version of N photos")
    parser.add_argument("--photo-size", type=int, default=1536)
    parser.add_argument(
        "--png-levels", default="6,1", help="zlib levels of the PNGs, each timed (photos part)"
    )
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    if args.photos:
        photos(args)
        return
    work = Path(tempfile.mkdtemp(prefix="refset-bench-export-"))
    try:
        t0 = time.perf_counter()
        inp, _ = make_input(work / "src", cases=args.cases, slices=args.slices, matrix=args.matrix)
        print(
            f"version: {len(inp.cases)} cases, {len(inp.reads)} reads, "
            f"{sum(len(r.findings) for r in inp.reads)} findings, "
            f"{sum(len(s.instances) for _, s in inp.series())} images "
            f"({args.matrix}x{args.matrix}x{args.slices}); generated in "
            f"{time.perf_counter() - t0:.1f} s (not timed below)"
        )
        results: dict[str, list[float]] = {"floor": [], "seg": [], "package": []}
        for n in range(args.repeat):

            def floor(n=n):
                out = work / f"floor{n}"
                for _, s in inp.series():
                    for i in s.instances:
                        target = out / s.series_uid / f"{i.sop_instance_uid}.dcm"
                        target.parent.mkdir(parents=True, exist_ok=True)
                        shutil.copyfile(i.path, target)

            def seg_only(n=n):
                seg.write(PackageDir(work / f"seg{n}", 315532800.0), inp)

            def package(n=n):
                write_package(inp, work / f"pkg{n}")

            results["floor"].append(timed(floor))
            results["seg"].append(timed(seg_only))
            results["package"].append(timed(package))
        best = {k: min(v) for k, v in results.items()}
        files = sum(1 for p in (work / "pkg0").rglob("*") if p.is_file())
        size = sum(p.stat().st_size for p in (work / "pkg0").rglob("*") if p.is_file())
        print(f"floor (copy images):   {best['floor']:8.2f} s")
        print(f"SEG objects only:      {best['seg']:8.2f} s")
        print(
            f"whole NIFDC package:   {best['package']:8.2f} s  ({files} files, {size / 1e6:.0f} MB)"
        )
        print(f"package / SEG only:    {best['package'] / best['seg']:8.2f} x  (goal <= 3)")
        print(f"package / floor:       {best['package'] / best['floor']:8.2f} x")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def photos(args) -> None:
    from export import fundus
    from tests.export.builders import make_fundus_input

    work = Path(tempfile.mkdtemp(prefix="refset-bench-export-photos-"))
    try:
        t0 = time.perf_counter()
        specs = [
            (n, ("OD", "OS")[n % 2], ("jpeg", "png", "tiff")[n % 3]) for n in range(args.photos)
        ]
        inp, _ = make_fundus_input(work / "src", specs, args.photo_size)
        print(
            f"version: {len(inp.cases)} photographs {args.photo_size}x{args.photo_size} RGB; "
            f"generated in {time.perf_counter() - t0:.1f} s (not timed below)"
        )
        levels = [int(v) for v in args.png_levels.split(",")]
        results: dict[str, list[float]] = {"floor": [], "package": []}
        results.update({f"photos{lv}": [] for lv in levels})
        chosen = fundus.PNG_COMPRESS_LEVEL
        for n in range(args.repeat):

            def floor(n=n):
                out = work / f"floor{n}"
                out.mkdir()
                for _, s in inp.series():
                    for i in s.instances:
                        shutil.copyfile(i.path, out / f"{i.sop_instance_uid}.dcm")

            results["floor"].append(timed(floor))
            for lv in levels:
                fundus.PNG_COMPRESS_LEVEL = lv
                out = PackageDir(work / f"ph{n}-{lv}", 315532800.0)
                results[f"photos{lv}"].append(timed(lambda out=out: fundus.write(out, inp)))
            fundus.PNG_COMPRESS_LEVEL = chosen
            results["package"].append(timed(lambda n=n: write_package(inp, work / f"pkg{n}")))
        best = {k: min(v) for k, v in results.items()}
        size = sum(
            p.stat().st_size for p in (work / "pkg0" / inp.package_name).rglob("*") if p.is_file()
        )
        print(f"floor (copy DICOM):    {best['floor']:8.2f} s")
        for lv in levels:
            mb = sum(p.stat().st_size for p in (work / f"ph0-{lv}").rglob("*.png")) / 1e6
            print(f"photos part, PNG zlib level {lv}: {best[f'photos{lv}']:8.2f} s  "
                  f"({best[f'photos{lv}'] / len(inp.cases) * 1000:.0f} ms a photograph; "
                  f"PNGs {mb:.1f} MB)")  # fmt: skip
        print(f"whole NIFDC package (PNG level {chosen}): {best['package']:8.2f} s  "
              f"({size / 1e6:.0f} MB)")  # fmt: skip
        print(f"package / floor:       {best['package'] / best['floor']:8.2f} x")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
