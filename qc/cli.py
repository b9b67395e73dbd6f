"""``python -m qc PATH [PATH ...] [--profile FILE] [--json]``: QC folders of DICOM offline.

Exit status: 0 when no series fails, 1 when any series fails, 2 on usage errors.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from .profile import Profile
from .runner import run_series
from .series import load_series


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse exits 2 already; keep the message short
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m qc", description="Image quality control of DICOM series.")
    p.add_argument("paths", nargs="+", help="DICOM files or folders (searched recursively)")
    p.add_argument("--profile", help="profile JSON file (default: built-in per modality)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    profile = None
    if args.profile:
        try:
            profile = Profile.from_json(args.profile)
        except (OSError, ValueError, TypeError) as exc:
            print(f"python -m qc: error: bad profile {args.profile}: {exc}", file=sys.stderr)
            return 2
    skipped: list[str] = []
    try:
        series = load_series(args.paths, skipped=skipped)
    except FileNotFoundError as exc:
        print(f"python -m qc: error: {exc}", file=sys.stderr)
        return 2
    if not series:
        print("python -m qc: error: no DICOM images found", file=sys.stderr)
        return 2
    reports = [run_series(s, profile) for s in series]
    failed = any(r.status == "fail" for r in reports)
    if args.json:
        out = {
            "status": "fail" if failed else "ok",
            "series": [r.to_dict() for r in reports],
            "skipped": skipped,
        }
        print(json.dumps(out, ensure_ascii=False, indent=2))
    else:
        for note in skipped:
            print(f"note: skipped {note}")
        for r in reports:
            print(f"\n{r.modality or '?'} {r.series_uid} ({r.num_files} files): {r.status.upper()}")
            print(f"  {'rule':<24} {'status':<6} {'value':<14} {'threshold':<34} message")
            for res in r.results:
                val = "" if res.value is None else str(res.value)
                print(
                    f"  {res.rule:<24} {res.status:<6} {val[:14]:<14} "
                    f"{res.threshold[:34]:<34} {res.message_en}"
                )
    return 1 if failed else 0
