"""The only real images we may use: those shipped inside pydicom and pydicom-data.

Lists files straight from the installed packages (pydicom's get_testdata_files
would try to download more, and nothing here reaches the internet).
"""

from __future__ import annotations

from pathlib import Path

import pydicom


def _package_dirs() -> list[Path]:
    dirs = [Path(pydicom.__file__).parent / "data" / "test_files"]
    import data_store  # the pydicom-data package

    dirs.append(Path(data_store.__file__).parent / "data")
    return dirs


def real_dicom_files() -> list[Path]:
    """Every file in those packages that pydicom can parse as DICOM (sorted)."""
    out = []
    for base in _package_dirs():
        assert base.is_dir(), f"missing test data directory {base}"
        for path in sorted(base.rglob("*")):
            if not path.is_file() or path.suffix in (
                ".py",
                ".pyc",
                ".json",
                ".txt",
                ".gz",
                ".bz2",
                ".zip",
            ):
                continue
            try:
                pydicom.dcmread(path, stop_before_pixels=True)
            except Exception:
                continue
            out.append(path)
    return out
