"""Image quality control rules and label-agreement math.

Plain Python on plain data (numpy arrays, pydicom datasets, dataclasses): no
Django. The Django apps call into this package; nothing here calls back.
"""

from .profile import Profile
from .registry import RULES, Rule
from .result import RuleResult, SeriesReport
from .runner import run_series
from .series import SeriesInput, load_series

__all__ = [
    "RULES",
    "Profile",
    "Rule",
    "RuleResult",
    "SeriesInput",
    "SeriesReport",
    "load_series",
    "run_series",
]
