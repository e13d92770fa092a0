"""Rate fits: log–log least squares on the points above the estimator's floor.

A fit of log y = c + p·log x returns the exponent p with its standard error and a 95% interval
(Student t on the residuals), the points it used and the points it left out and why.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import stats


class Fit(NamedTuple):
    slope: float
    intercept: float
    stderr: float
    ci_low: float
    ci_high: float
    n_points: int
    excluded: list  # (x, reason)


def usable(value, floor, stderr=0.0, margin: float = 10.0):
    """A point carries rate information when finite and `margin` times above its floor and its
    standard error (a point within noise or rounding of zero tells nothing about a slope)."""
    value, floor, stderr = (np.asarray(a, dtype=float) for a in (value, floor, stderr))
    return np.isfinite(value) & (value > margin * np.maximum(floor, 2.0 * stderr))


def fit_loglog(x, y, floor=None, stderr=None, level: float = 0.95) -> Fit:
    """Least-squares slope of log y against log x over the usable points."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    floor = np.zeros_like(y) if floor is None else np.asarray(floor, dtype=float)
    stderr = np.zeros_like(y) if stderr is None else np.asarray(stderr, dtype=float)
    keep = usable(y, floor, stderr)
    excluded = [
        (float(xi), "not finite" if not np.isfinite(yi) else "under 10x the floor or error")
        for xi, yi, k in zip(x, y, keep, strict=True)
        if not k
    ]
    n = int(keep.sum())
    if n < 2:
        return Fit(np.nan, np.nan, np.nan, np.nan, np.nan, n, excluded)
    lx, ly = np.log(x[keep]), np.log(y[keep])
    res = stats.linregress(lx, ly)
    if n == 2:
        return Fit(res.slope, res.intercept, np.nan, np.nan, np.nan, n, excluded)
    half = stats.t.ppf(0.5 + level / 2, n - 2) * res.stderr
    return Fit(
        res.slope, res.intercept, res.stderr, res.slope - half, res.slope + half, n, excluded
    )
