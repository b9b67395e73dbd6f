"""Agreement between readers: the mathematics, framework-free and vectorised.

Every coefficient is written as per-case additive sufficient statistics plus a
"finisher" that turns their sum into the coefficient (`stats.Additive`). The
point estimate is the finisher of the column sums; a stratum or a week is the
finisher of the sum over its cases; a case-level bootstrap replicate is the
finisher of a weighted sum, so B replicates are one matrix product and one
vectorised finisher call (`bootstrap.py`). Nothing loops over replicates.

Modules:
- `categorical`: percent agreement, Cohen's kappa (unweighted, linear,
  quadratic), Fleiss' kappa with its standard error, Krippendorff's alpha
  (nominal, ordinal, interval; missing ratings allowed), Gwet's AC1/AC2;
- `continuous`: ICC in McGraw & Wong's and Shrout & Fleiss' names,
  Bland-Altman bias and limits of agreement, within-subject coefficient of
  variation;
- `shapes`: Dice, IoU, HD95, ASSD, normalised surface distance in mm on
  anisotropic grids, and STAPLE (SimpleITK);
- `detection`: per reader against the reference, pairwise between readers,
  the LIDC table of lesions marked by 1..N readers, under qc.matching's rule;
- `report`: the full report of a project from plain data.

Checked against krippendorff, statsmodels, scikit-learn, SimpleITK, irrCAC
and pingouin, and against published worked examples (tests/qc/test_agreement_*).
"""

from qc.agreement.stats import Additive, Estimate

__all__ = ["Additive", "Estimate"]
