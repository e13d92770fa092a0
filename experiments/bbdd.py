"""bbdd: Benton, De Bortoli, Doucet, Deligiannidis 2024 (arXiv 2308.03686).

The claim: with the exponential integrator on their "half uniform, half geometric" schedule,
KL(q_δ ‖ p̂) ≲ ε_score² + d (T + log 1/δ)²/N + d e^{−2T}, so N = Õ(d log²(1/δ)/ε²) steps reach
KL ≤ ε². Predicted: KL ∝ N⁻¹ and ∝ d at fixed N (N*(ε) ∝ d); KL ∝ (T + log 1/δ)² in the early
stopping on the `bbdd` schedule (faster growth on `uniform`); a floor ∝ ε² from the score error.
Six sweeps: `bbdd` (product target, KL by quadrature: the calibration, since KL is additive over
its coordinates), `bbdd_cloud` (a point cloud on a 2-sphere, near the worst case: the Girsanov
integral against N and d), `bbdd_cloud_kl` (its marginal KL at large N: the cloud's law
factorises into the 3-dimensional span of its points and an exact Gaussian complement, so the
density ratios run in 3 dimensions), `bbdd_thin` (a non-product target near the worst case: a
mixture of 4 Gaussians thinner than σ_δ, whose score sharpens like 1/σ_s² down to δ; marginal
KL by density ratios on the 3-dimensional span of its means, the complement exact, against N
and d, N*(ε) against d, the Girsanov integral on the same runs), `bbdd_delta` (δ from 1e-1 to
1e-5 on a product of two atoms, `bbdd` against `uniform`), `bbdd_score_error` (a Gaussian with
a shifted-target score, exact KL).
The Girsanov integral (path_mc), the quantity the bound controls, is measured beside the KL.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from diffusion_rates import rates
from experiments import common

NAME = "bbdd"
SWEEPS = ["bbdd", "bbdd_cloud", "bbdd_cloud_kl", "bbdd_thin", "bbdd_delta", "bbdd_score_error"]
COMMAND = (
    "make reproduce EXPERIMENTS='bbdd bbdd_cloud bbdd_cloud_kl bbdd_thin bbdd_delta "
    "bbdd_score_error'"
)
KL_LEVEL = 1e-2  # ε² at which N*(ε) is read off the product runs
# ... and off the thin-mixture runs, whose KL crosses it inside the N range at every d
THIN_KL_LEVEL = 5e-3


def _sweep(*names):
    return lambda r: r[r.experiment.isin(names)]


def _schedule(name):
    return lambda r: r[(r.experiment == "bbdd_delta") & (r.schedule == name)]


def prepare(records: pd.DataFrame) -> pd.DataFrame:
    """Adds `horizon` = T + log(1/δ), the early-stopping factor of the bound."""
    return records.assign(horizon=records["T"] + np.log(1.0 / records.delta))


KL_VS_N = [
    common.Slope("KL vs N, product (quadrature)", "kl", "steps", ("d",), -1.0, _sweep("bbdd")),
    common.Slope("KL vs N, point cloud", "kl", "steps", ("d",), -1.0, _sweep("bbdd_cloud_kl")),
    common.Slope("KL vs N, thin mixture", "kl", "steps", ("d",), -1.0, _sweep("bbdd_thin")),
]
GIRSANOV_VS_N = common.Slope(
    "Girsanov vs N",
    "girsanov",
    "steps",
    ("experiment", "d"),
    -1.0,
    _sweep("bbdd", "bbdd_cloud", "bbdd_thin"),
)

SPECS = [
    *KL_VS_N,
    GIRSANOV_VS_N,
    common.Slope(
        "Girsanov vs d at fixed N",
        "girsanov",
        "d",
        ("experiment", "steps"),
        1.0,
        _sweep("bbdd", "bbdd_cloud", "bbdd_thin"),
        headline=False,
    ),
    common.Slope(
        "KL vs d at fixed N, thin mixture", "kl", "d", ("steps",), 1.0, _sweep("bbdd_thin")
    ),
    common.NStar(
        f"N*(KL = {KL_LEVEL:g}) vs d, product",
        "kl",
        KL_LEVEL,
        "d",
        ("target",),
        1.0,
        _sweep("bbdd"),
    ),
    common.NStar(
        f"N*(KL = {THIN_KL_LEVEL:g}) vs d, thin mixture",
        "kl",
        THIN_KL_LEVEL,
        "d",
        ("target",),
        1.0,
        _sweep("bbdd_thin"),
    ),
    common.Slope(
        "KL vs T + log(1/δ), bbdd schedule", "kl", "horizon", ("d",), 2.0, _schedule("bbdd")
    ),
    common.Slope(
        "KL vs T + log(1/δ), uniform schedule",
        "kl",
        "horizon",
        ("d",),
        2.0,
        _schedule("uniform"),
        headline=False,
    ),
    common.Slope(
        "KL vs ε (score error)", "kl", "eps_score", ("steps",), 2.0, _sweep("bbdd_score_error")
    ),
]

PANELS = [
    common.Panels(
        "kl_vs_steps",
        "BBDD: KL against N (ei, bbdd schedule)",
        "kl",
        "steps",
        "experiment",
        ("d",),
        "KL(q_δ ‖ output)",
        _sweep("bbdd", "bbdd_cloud_kl", "bbdd_thin"),
        (-1.0, -2.0),
    ),
    common.Panels(
        "kl_vs_d",
        "BBDD: KL against d at fixed N, thin mixture",
        "kl",
        "d",
        "experiment",
        ("steps",),
        "KL(q_δ ‖ output)",
        _sweep("bbdd_thin"),
        (1.0,),
    ),
    common.Panels(
        "girsanov_vs_steps",
        "BBDD: Girsanov integral against N",
        "girsanov",
        "steps",
        "experiment",
        ("d",),
        "Σ∫E‖∇log q − ŝ‖² dt",
        _sweep("bbdd", "bbdd_cloud", "bbdd_thin"),
        (-1.0,),
    ),
    common.Panels(
        "kl_vs_delta",
        "BBDD: KL against the early stopping (N fixed)",
        "kl",
        "horizon",
        "target",
        ("schedule",),
        "KL(q_δ ‖ output)",
        _sweep("bbdd_delta"),
        (2.0,),
        xlabel="T + log(1/δ)",
    ),
    common.Panels(
        "kl_vs_eps",
        "BBDD: the score-error floor",
        "kl",
        "eps_score",
        "target",
        ("steps",),
        "KL(q_δ ‖ output)",
        _sweep("bbdd_score_error"),
        (2.0,),
        xlabel="score error ε",
    ),
]


def _ratio_runs(records: pd.DataFrame, experiment: str, label: str) -> str:
    """The density-ratio KL runs of `experiment`: value, error, floor, inner paths and weight
    spread per (d, N)."""
    runs = records[records.experiment == experiment]
    wide = runs.pivot_table(index=["d", "steps"], columns="metric", values="value")
    kl = runs[runs.metric == "kl"].set_index(["d", "steps"]).sort_index()
    if kl.empty:
        return f"{label}: no records."
    parts = [
        f"d = {d:g}, N = {n:g}: {r.value:.3g} ± {r.stderr:.2g} (floor {r.floor:.2g}; "
        f"{wide.loc[(d, n), 'paths']:g} paths, log-weight spread "
        f"{wide.loc[(d, n), 'log_weight_spread']:.2g}; {r.status})"
        for (d, n), r in kl.iterrows()
    ]
    reduction = ", ".join(sorted(set(kl.reduction.dropna())))
    return (
        f"{label} (`{experiment}`; density ratios on the span of the means or points with the "
        f"complement exact: {reduction}): " + "; ".join(parts) + "."
    )


def _regime(row) -> str:
    """Which rate a fitted exponent's 95% interval picks out: 1/N² or 1/N when it meets one
    band (−2 ± tolerance, −1 ± tolerance) and not the other, by `rates.verdict` on both."""
    fit = rates.Fit(row.slope, np.nan, np.nan, row.ci_low, row.ci_high, row.n_points, [])
    first, second = (rates.verdict(fit, p, row.tolerance) for p in (-1.0, -2.0))
    if "inconclusive" in (first, second) or first == second == "consistent":
        return "undecided"
    if second == "consistent":
        return "1/N²"
    if first == "consistent":
        return "1/N"
    if second == "faster than predicted":
        return "faster than 1/N²"
    return "slower than 1/N" if first == "slower than predicted" else "between 1/N and 1/N²"


def _regimes(records: pd.DataFrame) -> list[str]:
    """Per target, the regime of its KL-vs-N fits and of its Girsanov fits, and why."""
    table = common.fit_table(prepare(records), [*KL_VS_N, GIRSANOV_VS_N])
    if table.empty:
        return ["Regimes: no fit."]
    table = table.assign(regime=[_regime(r) for r in table.itertuples()])
    lines = []
    for name, fit in table.groupby("fit", sort=False):
        parts = [
            f"{regime} in {len(g)} of {len(fit)} groups ({'; '.join(g.group)}; exponents "
            f"{', '.join(f'{s:.2f}' for s in g.slope)})"
            for regime, g in fit.groupby("regime", sort=False)
        ]
        lines.append(f"- {name}: {'; '.join(parts)}.")
    return [
        "Regimes of the KL and of the Girsanov integral against N (1/N² or 1/N: the 95% "
        "interval meets that exponent ± its tolerance and not the other):",
        "",
        *lines,
        "",
        "Why. The exponential integrator freezes the score over each step. Along a path the "
        "frozen score misses the Brownian increment of the step, O(√h): the Girsanov integral, "
        "the path KL the bound controls, gains O(h²) a step, 1/N in all. In the law of the "
        "output that increment averages out (its mean is zero), leaving a bias O(h²) a step, "
        "O(1/N) in all (a weak error of order one), and the marginal KL, quadratic in it, "
        "falls like 1/N² on a smooth target. Near the worst case the score sharpens like "
        "1/σ_s² down to δ (the atoms of the point cloud, the components of the thin mixture, "
        "thinner than σ_δ): the geometric half of the `bbdd` schedule keeps every late step's "
        "relative size at κ = δ^{−1/M} − 1 (M its steps, about N/2), so each late step adds "
        "~dκ² to the path KL, d κ log(1/δ) ~ d log²(1/δ)/N in all, while a sharp component, "
        "locally a Gaussian of variance ≈ σ_δ², has its variance missed by O(κ log 1/δ): the "
        "marginal KL is ~ d (κ log 1/δ)², 1/N² again once κ log(1/δ) ≪ 1, i.e. "
        "N ≫ log²(1/δ).",
    ]


def notes(records: pd.DataFrame) -> list[str]:
    product = records[(records.experiment == "bbdd") & (records.metric == "kl")]
    thin = records[(records.experiment == "bbdd_thin") & (records.metric == "kl")]
    cloud = records[records.experiment == "bbdd_cloud"]
    return [
        common.looseness(product, rates.shape_bbdd, "d (T + log 1/δ)²/N on the product runs"),
        "",
        common.looseness(thin, rates.shape_bbdd, "d (T + log 1/δ)²/N on the thin-mixture runs"),
        "",
        *_regimes(records),
        "",
        _ratio_runs(records, "bbdd_cloud_kl", "Point-cloud KL"),
        "",
        _ratio_runs(records, "bbdd_thin", "Thin-mixture KL"),
        "",
        *common.bayes(cloud, "girsanov", ("steps", "d"), "Bayesian fit, point cloud"),
    ]
