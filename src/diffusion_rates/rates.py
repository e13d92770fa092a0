"""Rate fits, N*(ε), Bayesian exponents, predicted shapes and verdicts.

docs/estimators.md, "Rate fits" and "Verdicts". Every fit works on log y against log x over the
*usable* points only: finite values at least 10 times above the estimator's floor and 3 standard
errors above zero (`usable`); the points left out are listed with the reason. The pieces,
all pure functions of arrays or tidy record frames:

- `fit_loglog`: least squares of log y = c + p·log x with a Student-t interval from the residuals.
- `fit_loglog_seeds`: the same slope on the per-N mean of log y over seeds, with a percentile
  bootstrap interval that resamples whole seeds.
- `steps_to_reach`, `steps_to_reach_table`: N*(ε), the steps needed to reach an error, by log–log
  interpolation; fit its slope against d, D, log(1/δ) or K with `fit_loglog` on the table.
- `bayes_loglog`: numpyro NUTS posterior of log y = c + Σ b_i log x_i + N(0, τ²).
- `PREDICTED_SHAPES`, `fit_constant`: each claim's bound as C·shape(x) with one free constant, and
  how loose it is (measured ÷ bound).
- `verdict`: consistent / faster than predicted / slower than predicted / inconclusive.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy import stats

MARGIN = 10.0  # a usable point is MARGIN × above its floor (a bias or grid error) ...
ERROR_MARGIN = 3.0  # ... and ERROR_MARGIN standard errors above zero (Monte Carlo noise)


class Fit(NamedTuple):
    slope: float
    intercept: float
    stderr: float
    ci_low: float
    ci_high: float
    n_points: int
    excluded: list  # (x, reason) from fit_loglog; (x, seed, reason) from fit_loglog_seeds
    method: str = "residual t"


def usable(value, floor, stderr=0.0, margin: float = MARGIN):
    """A point carries rate information when finite, `margin` times above its floor (the
    estimator's bias or grid error: a point near it measures the estimator) and ERROR_MARGIN
    standard errors above zero (a point within noise of zero tells nothing about a slope; noise
    above that is what the fit's interval accounts for):
    value > max(margin · floor, ERROR_MARGIN · stderr)."""
    value, floor, stderr = (np.asarray(a, dtype=float) for a in (value, floor, stderr))
    return np.isfinite(value) & (value > np.maximum(margin * floor, ERROR_MARGIN * stderr))


def _reason(value: float, floor: float, stderr: float, margin: float = MARGIN) -> str:
    """Why `usable` rejected a point, in words."""
    if not np.isfinite(value):
        return "not finite"
    if not (np.isfinite(floor) and np.isfinite(stderr)):
        return "floor or standard error not finite"
    if value <= 0:
        return "not positive"
    if margin * floor >= ERROR_MARGIN * stderr:
        return f"under {margin:g}x the floor"
    return f"under {ERROR_MARGIN:g} standard errors"


def fit_loglog(x, y, floor=None, stderr=None, level: float = 0.95) -> Fit:
    """Least-squares slope of log y against log x over the usable points.

    log y_i = c + p·log x_i + e_i; the interval is p ± t_{(1+level)/2, n−2} · se(p) with se(p) from
    the residuals (needs n ≥ 3 points; with n = 2 the slope has no interval)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    floor = np.zeros_like(y) if floor is None else np.asarray(floor, dtype=float)
    stderr = np.zeros_like(y) if stderr is None else np.asarray(stderr, dtype=float)
    keep = usable(y, floor, stderr)
    excluded = [
        (
            float(xi),
            "not finite" if not np.isfinite(yi) else "under 10x the floor or 3 standard errors",
        )
        for xi, yi, k in zip(x, y, keep, strict=True)
        if not k
    ]
    n = int(keep.sum())
    if n < 2:
        return Fit(np.nan, np.nan, np.nan, np.nan, np.nan, n, excluded)
    lx, ly = np.log(x[keep]), np.log(y[keep])
    slope, intercept = _least_squares(lx, ly)
    if n == 2:
        return Fit(slope, intercept, np.nan, np.nan, np.nan, n, excluded)
    # se(p)² = Σ residual² / ((n − 2) Σ (log x − mean)²); 0 for exact data (a constant too,
    # where scipy's linregress returns NaN through its correlation coefficient)
    residuals = ly - intercept - slope * lx
    se = np.sqrt(np.sum(residuals**2) / (n - 2) / np.sum((lx - lx.mean()) ** 2))
    half = stats.t.ppf(0.5 + level / 2, n - 2) * se
    return Fit(slope, intercept, se, slope - half, slope + half, n, excluded)


def _least_squares(lx, ly) -> tuple[float, float]:
    """Slope and intercept of the least-squares line through (lx, ly)."""
    centred = lx - lx.mean()
    slope = float(np.sum(centred * (ly - ly.mean())) / np.sum(centred**2))
    return slope, float(ly.mean() - slope * lx.mean())


def _column(frame: pd.DataFrame, name: str, default: float = 0.0) -> np.ndarray:
    if name in frame.columns:
        return frame[name].to_numpy(dtype=float)
    return np.full(len(frame), default)


def _masked_slopes(lx: np.ndarray, ly: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Row-wise least-squares slope of ly[b, :] on lx over the entries where valid[b, :]."""
    v = valid.astype(float)
    ly = np.where(valid, ly, 0.0)
    n = v.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mx = (v * lx).sum(axis=1) / n
        my = (v * ly).sum(axis=1) / n
        dx = (lx[None, :] - mx[:, None]) * v
        sxx = (dx**2).sum(axis=1)
        sxy = (dx * (ly - my[:, None])).sum(axis=1)
        slope = sxy / sxx
    return np.where((n >= 2) & (sxx > 0), slope, np.nan)


def fit_loglog_seeds(
    frame: pd.DataFrame,
    x: str = "steps",
    y: str = "value",
    seed: str = "seed",
    level: float = 0.95,
    n_boot: int = 2000,
    rng_seed: int = 0,
) -> Fit:
    """Log–log slope over seeds with a bootstrap interval that resamples whole seeds.

    Rows are usable when `usable(y, floor, stderr)` holds (columns `floor` and `stderr` are read
    when present, else 0); the others are listed in `excluded` as (x, seed, reason). With ȳ(x) the
    mean over seeds of log y at x (repeated rows of one seed and x are averaged first), the estimate
    is the least-squares fit ȳ(x) = c + p·log x over the distinct usable x; `n_points` counts them.

    Interval: draw k seeds with replacement from the k seeds (a seed brings all of its x values),
    recompute ȳ(x) as the count-weighted mean over the drawn seeds and refit; repeat `n_boot` times;
    the interval is the (1 ∓ level)/2 percentiles of the refitted slopes, `stderr` their sd.
    `method` = "bootstrap over k seeds". It measures seed-to-seed noise only, not the misfit of a
    straight line, and with few seeds it is too narrow (k = 2 has only 3 distinct resamples).

    With one seed, or when every seed gives the same values (an exact estimator whose seed does not
    matter), there is nothing to resample: the interval is `fit_loglog`'s residual t-interval,
    `method` = "residual t". Deterministic for a given `rng_seed`.
    """
    values = _column(frame, y, np.nan)
    floors, errs = _column(frame, "floor"), _column(frame, "stderr")
    xs_all = frame[x].to_numpy(dtype=float)
    seeds_all = frame[seed].to_numpy() if seed in frame.columns else np.zeros(len(frame), int)
    keep = usable(values, floors, errs) & np.isfinite(xs_all) & (xs_all > 0)
    excluded = [
        (
            float(xi),
            si.item() if hasattr(si, "item") else si,
            _reason(v, f, e) if np.isfinite(xi) and xi > 0 else "x not positive",
        )
        for xi, si, v, f, e, k in zip(xs_all, seeds_all, values, floors, errs, keep, strict=True)
        if not k
    ]
    used = pd.DataFrame({"x": xs_all[keep], "seed": seeds_all[keep], "ly": np.log(values[keep])})
    if used.x.nunique() < 2:
        nan = np.nan
        return Fit(nan, nan, nan, nan, nan, used.x.nunique(), excluded, "too few points")
    table = used.groupby(["seed", "x"]).ly.mean().unstack("x")  # seeds × x, NaN where missing
    lx = np.log(table.columns.to_numpy(dtype=float))
    logs = table.to_numpy(dtype=float)
    k, m = logs.shape
    ybar = np.nanmean(logs, axis=0)
    spread = np.nanmax(logs, axis=0) - np.nanmin(logs, axis=0)
    if k == 1 or np.all(spread <= 1e-12 * np.maximum(1.0, np.abs(ybar))):
        res = fit_loglog(np.exp(lx), np.exp(ybar), level=level)
        return res._replace(excluded=excluded, method="residual t")
    slope, intercept = _least_squares(lx, ybar)
    rng = np.random.default_rng(rng_seed)
    counts = rng.multinomial(k, np.full(k, 1.0 / k), size=n_boot).astype(float)  # n_boot × k
    present = ~np.isnan(logs)
    weight = counts @ present
    with np.errstate(invalid="ignore", divide="ignore"):
        boot_y = (counts @ np.where(present, logs, 0.0)) / weight
    slopes = _masked_slopes(lx, boot_y, weight > 0)
    slopes = slopes[np.isfinite(slopes)]
    lo, hi = np.quantile(slopes, [(1 - level) / 2, (1 + level) / 2])
    return Fit(
        slope,
        intercept,
        float(np.std(slopes, ddof=1)),
        float(lo),
        float(hi),
        m,
        excluded,
        f"bootstrap over {k} seeds",
    )


# --- N*(ε) ---------------------------------------------------------------------------------------


def steps_to_reach_detail(steps, values, target: float) -> tuple[float, str]:
    """N*(target) with the reason when there is none; see `steps_to_reach`."""
    steps, values = np.asarray(steps, dtype=float), np.asarray(values, dtype=float)
    if not target > 0:
        raise ValueError(f"target must be positive, got {target}")
    ok = np.isfinite(steps) & (steps > 0) & np.isfinite(values) & (values > 0)
    steps, values = steps[ok], values[ok]
    if steps.size == 0:
        return np.nan, "no usable points"
    order = np.argsort(steps, kind="stable")
    steps, values = steps[order], values[order]
    above = np.flatnonzero(values > target)
    if above.size == 0:
        return np.nan, "already below target at the smallest N"
    i = above[-1]
    if i == steps.size - 1:
        return np.nan, "not reached by the largest N"
    ln0, ln1 = np.log(steps[i]), np.log(steps[i + 1])
    lv0, lv1 = np.log(values[i]), np.log(values[i + 1])
    return float(np.exp(ln0 + (np.log(target) - lv0) * (ln1 - ln0) / (lv1 - lv0))), "ok"


def steps_to_reach(steps, values, target: float) -> float:
    """N*(ε): the number of steps from which the error stays at or below `target`.

    Points are sorted by N (non-finite and non-positive values dropped). Let i be the *last* point
    with value > target, so every larger measured N is at or below it (a noisy curve that dips under
    the target and comes back counts from its last crossing, never from an early dip). Between
    (N_i, v_i) and (N_{i+1}, v_{i+1}) log v is linear in log N:

        log N* = log N_i + (log ε − log v_i) · (log N_{i+1} − log N_i) / (log v_{i+1} − log v_i),

    exact on a power law v = a·N^p. NaN when the target is never reached (the last point is above
    it) and also when the first point is already at or below it: N* is then somewhere under N_min,
    and returning N_min would put a made-up point on an N*-vs-d plot. `steps_to_reach_detail` says
    which.
    """
    return steps_to_reach_detail(steps, values, target)[0]


def steps_to_reach_table(
    frame: pd.DataFrame,
    by: Sequence[str],
    target: float,
    x: str = "steps",
    y: str = "value",
    margin: float = MARGIN,
) -> pd.DataFrame:
    """N*(target) per group of `by`, from the mean over seeds of log y at each N.

    Rows with a non-positive or non-finite value are dropped. When the table has `floor` / `stderr`
    columns, a group whose target is not above max(margin·floor, ERROR_MARGIN·stderr) (largest
    over its rows) gets NaN: the crossing would sit in the estimator's noise. Columns: `by`,
    n_star, reason, n_points (distinct N), target. Fit the slope of N* against d, D, log(1/δ)
    or K with `fit_loglog` on it.
    """
    by = list(by)
    data = frame[np.isfinite(frame[y].astype(float)) & (frame[y].astype(float) > 0)].copy()
    data["_ly"] = np.log(data[y].astype(float))
    data["_floor"] = np.maximum(
        margin * _column(data, "floor"), ERROR_MARGIN * _column(data, "stderr")
    )
    rows = []
    for key, g in data.groupby(by, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        curve = g.groupby(x)._ly.mean()
        if not target > g["_floor"].max():
            n_star, reason = np.nan, f"target under {margin:g}x the floor or the noise"
        else:
            n_star, reason = steps_to_reach_detail(
                curve.index.to_numpy(float), np.exp(curve.to_numpy()), target
            )
        rows.append(
            dict(zip(by, key, strict=True), n_star=n_star, reason=reason, n_points=len(curve))
        )
    out = pd.DataFrame(rows, columns=[*by, "n_star", "reason", "n_points"])
    out["target"] = target
    return out


# --- Bayesian exponents --------------------------------------------------------------------------


def bayes_loglog(
    frame: pd.DataFrame,
    y: str = "value",
    xs: Sequence[str] = ("steps", "d"),
    num_warmup: int = 500,
    num_samples: int = 1000,
    rng_seed: int = 0,
) -> pd.DataFrame:
    """Posterior of the exponents of log y = c + Σ_i b_i log x_i + e, e ~ N(0, τ²).

    Priors (weakly informative on the log scale): c ~ N(0, 10), b_i ~ N(0, 5), τ ~ HalfNormal(1).
    Usable rows only (`usable` with the `floor` / `stderr` columns when present). One NUTS chain
    (numpyro, dense mass matrix: c and the b_i are strongly correlated when log x is not centred).
    Returns one row per parameter (c, then b for each name in `xs`, then tau): mean, sd, the 2.5%
    and 97.5% posterior quantiles, and numpyro's split-chain r_hat and n_eff.
    """
    import jax
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist
    from numpyro.diagnostics import summary
    from numpyro.infer import MCMC, NUTS

    xs = list(xs)
    values = _column(frame, y, np.nan)
    design = np.column_stack([_column(frame, name, np.nan) for name in xs])
    keep = usable(values, _column(frame, "floor"), _column(frame, "stderr"))
    keep &= np.all(np.isfinite(design) & (design > 0), axis=1)
    if keep.sum() < len(xs) + 2:
        raise ValueError(f"{int(keep.sum())} usable points for {len(xs) + 2} parameters")
    lx = jnp.asarray(np.log(design[keep]), dtype=jnp.float64)
    ly = jnp.asarray(np.log(values[keep]), dtype=jnp.float64)

    def model(lx, ly):
        c = numpyro.sample("c", dist.Normal(0.0, 10.0))
        b = numpyro.sample("b", dist.Normal(jnp.zeros(lx.shape[1]), 5.0).to_event(1))
        tau = numpyro.sample("tau", dist.HalfNormal(1.0))
        numpyro.sample("obs", dist.Normal(c + lx @ b, tau), obs=ly)

    mcmc = MCMC(
        NUTS(model, dense_mass=True),
        num_warmup=num_warmup,
        num_samples=num_samples,
        num_chains=1,
        progress_bar=False,
    )
    mcmc.run(jax.random.PRNGKey(rng_seed), lx, ly)
    draws = {k: np.asarray(v) for k, v in mcmc.get_samples(group_by_chain=True).items()}
    diag = summary(draws, group_by_chain=True)
    columns = [("c", draws["c"][0], diag["c"], None)]
    columns += [(name, draws["b"][0, :, i], diag["b"], i) for i, name in enumerate(xs)]
    columns += [("tau", draws["tau"][0], diag["tau"], None)]
    rows = []
    for name, samples, d, i in columns:
        pick = (lambda a, i=i: float(np.asarray(a)[i])) if i is not None else float
        rows.append(
            dict(
                param=name,
                mean=float(samples.mean()),
                sd=float(samples.std(ddof=1)),
                q2_5=float(np.quantile(samples, 0.025)),
                q97_5=float(np.quantile(samples, 0.975)),
                r_hat=pick(d["r_hat"]),
                n_eff=pick(d["n_eff"]),
            )
        )
    return pd.DataFrame(rows).rename(columns={"q2_5": "2.5%", "q97_5": "97.5%"})


# --- predicted shapes, one free constant ---------------------------------------------------------


def shape_bbdd(d, T, delta, steps):
    """BBDD discretisation term: KL ≈ d (T + log(1/δ))² / N."""
    d, T, delta, steps = (np.asarray(a, dtype=float) for a in (d, T, delta, steps))
    return d * (T + np.log(1.0 / delta)) ** 2 / steps


def shape_lcw(K, steps):
    """LCW: TV ≈ log²(K·N) · log²(N) / N (their T is our step count N)."""
    K, steps = np.asarray(K, dtype=float), np.asarray(steps, dtype=float)
    return np.log(K * steps) ** 2 * np.log(steps) ** 2 / steps


def shape_pad(intrinsic_dim, steps):
    """PAD: KL ≈ d_intrinsic · polylog(N) / N, the polylog taken as log²(N) (the paper leaves its
    power unspecified; log² N is the power BBDD's schedule gives)."""
    d, steps = np.asarray(intrinsic_dim, dtype=float), np.asarray(steps, dtype=float)
    return d * np.log(steps) ** 2 / steps


def shape_ptw(h, p):
    """PTW: W2 ≈ h^p, h the step size, p the scheme's strong order."""
    return np.asarray(h, dtype=float) ** np.asarray(p, dtype=float)


PREDICTED_SHAPES: dict[str, Callable] = {
    "bbdd": shape_bbdd,
    "lcw": shape_lcw,
    "pad": shape_pad,
    "ptw": shape_ptw,
}


class ConstantFit(NamedTuple):
    C: float  # exp(mean(log y − log shape)): the bound's constant fitted in log space
    ratio: np.ndarray  # y / (C·shape): scatter around 1
    C_sup: float  # max(y / shape): the tightest constant that keeps the bound valid at every point
    looseness: np.ndarray  # y / (C_sup·shape) ≤ 1: measured ÷ bound


def fit_constant(x: Mapping[str, object] | pd.DataFrame, y, shape: Callable) -> ConstantFit:
    """Fit a bound C·shape(x) with one free constant.

    `x` is a dict of arrays or a frame; `shape` is called with the keys its signature names (a frame
    may carry other columns). `y` is an array or, with a frame, a column name. Points where y or the
    shape is not finite and positive are left out of C and C_sup (their ratio is NaN).

        C = exp(mean_i(log y_i − log shape(x_i))),   ratio_i = y_i / (C·shape(x_i)),
        C_sup = max_i y_i / shape(x_i),              looseness_i = y_i / (C_sup·shape(x_i)) ≤ 1.

    C says how large the constant hidden in "≲" is here; looseness is measured ÷ bound with the
    smallest constant that makes the bound hold everywhere, so 1 at the tightest point and ≪ 1 where
    the bound is loose.
    """
    if isinstance(y, str):
        y = x[y]
    y = np.asarray(y, dtype=float)
    names = [
        p.name
        for p in inspect.signature(shape).parameters.values()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]
    args = {name: np.asarray(x[name], dtype=float) for name in names if name in x}
    s = np.broadcast_to(np.asarray(shape(**args), dtype=float), y.shape)
    ok = np.isfinite(y) & (y > 0) & np.isfinite(s) & (s > 0)
    if not ok.any():
        nan = np.full(y.shape, np.nan)
        return ConstantFit(np.nan, nan, np.nan, nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(ok, y / s, np.nan)
    C = float(np.exp(np.nanmean(np.log(r))))
    C_sup = float(np.nanmax(r))
    return ConstantFit(C, r / C, C_sup, r / C_sup)


# --- verdicts ------------------------------------------------------------------------------------

VERDICTS = ("consistent", "faster than predicted", "slower than predicted", "inconclusive")


def verdict(
    fit: Fit, predicted: float, tolerance: float = 0.2, lower_is_better: bool = True
) -> str:
    """Compare a fitted exponent's interval [lo, hi] with the prediction (docs/estimators.md).

    - "inconclusive": fewer than 3 usable points, a non-finite interval, or hi − lo > 4·tolerance
      (the error bars cannot tell the prediction from its neighbours);
    - "consistent": [lo, hi] meets [predicted − tolerance, predicted + tolerance];
    - "faster than predicted": the whole interval lies on the better side of that band — below it
      when lower_is_better (an error-vs-N exponent of −2 against −1; an N*-vs-d exponent of 0.5
      against 1), above it otherwise; the bound is loose here;
    - "slower than predicted": the whole interval lies on the worse side; the bound is violated, or
      the data are pre-asymptotic.
    """
    lo, hi = float(fit.ci_low), float(fit.ci_high)
    if fit.n_points < 3 or not (np.isfinite(lo) and np.isfinite(hi)) or hi - lo > 4 * tolerance:
        return "inconclusive"
    band_lo, band_hi = predicted - tolerance, predicted + tolerance
    if hi >= band_lo and lo <= band_hi:
        return "consistent"
    below = hi < band_lo
    return "faster than predicted" if below == lower_is_better else "slower than predicted"
