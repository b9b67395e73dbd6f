"""Tests of the synthetic DICOM generator (``fixtures`` package); no Django, no database."""

import sys
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:  # make ``import fixtures`` work however pytest is started
    sys.path.insert(0, _ROOT)
