"""bbdd: Benton, De Bortoli, Doucet, Deligiannidis 2024 (arXiv 2308.03686).

The claim: with the exponential integrator on their "half uniform, half geometric" schedule,
KL(q_δ ‖ p̂) ≲ ε_score² + d (T + log 1/δ)²/N + d e^{−2T}, so N = Õ(d log²(1/δ)/ε²) steps reach
KL ≤ ε². Predicted: KL ∝ N⁻¹ and ∝ d at fixed N (N*(ε) ∝ d); KL ∝ (T + log 1/δ)² in the early
stopping on the `bbdd` schedule (faster growth on `uniform`); a floor ∝ ε² from the score error.
Five sweeps: `bbdd` (product target, KL by quadrature: the calibration, since KL is additive over
its coordinates), `bbdd_cloud` (a point cloud on a 2-sphere, near the worst case: the Girsanov
integral against N and d), `bbdd_cloud_kl` (its marginal KL at large N: the cloud's law
factorises into the 3-dimensional span of its points and an exact Gaussian complement, so the
density ratios run in 3 dimensions), `bbdd_delta` (δ from 1e-1 to 1e-5 on a product of two atoms,
`bbdd` against `uniform`), `bbdd_score_error` (a Gaussian with a shifted-target score, exact KL).
The Girsanov integral (path_mc), the quantity the bound controls, is measured beside the KL.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from diffusion_rates import rates
from experiments import common

NAME = "bbdd"
SWEEPS = ["bbdd", "bbdd_cloud", "bbdd_cloud_kl", "bbdd_delta", "bbdd_score_error"]
COMMAND = "make reproduce EXPERIMENTS='bbdd bbdd_cloud bbdd_cloud_kl bbdd_delta bbdd_score_error'"
KL_LEVEL = 1e-2  # ε² at which N*(ε) is read off the product runs


def _sweep(*names):
    return lambda r: r[r.experiment.isin(names)]


def _schedule(name):
    return lambda r: r[(r.experiment == "bbdd_delta") & (r.schedule == name)]


def prepare(records: pd.DataFrame) -> pd.DataFrame:
    """Adds `horizon` = T + log(1/δ), the early-stopping factor of the bound."""
    return records.assign(horizon=records["T"] + np.log(1.0 / records.delta))


SPECS = [
    common.Slope("KL vs N, product (quadrature)", "kl", "steps", ("d",), -1.0, _sweep("bbdd")),
    common.Slope("KL vs N, point cloud", "kl", "steps", ("d",), -1.0, _sweep("bbdd_cloud_kl")),
    common.Slope(
        "Girsanov vs N",
        "girsanov",
        "steps",
        ("experiment", "d"),
        -1.0,
        _sweep("bbdd", "bbdd_cloud"),
    ),
    common.Slope(
        "Girsanov vs d at fixed N",
        "girsanov",
        "d",
        ("experiment", "steps"),
        1.0,
        _sweep("bbdd", "bbdd_cloud"),
        headline=False,
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
        _sweep("bbdd", "bbdd_cloud_kl"),
        (-1.0, -2.0),
    ),
    common.Panels(
        "girsanov_vs_steps",
        "BBDD: Girsanov integral against N",
        "girsanov",
        "steps",
        "experiment",
        ("d",),
        "Σ∫E‖∇log q − ŝ‖² dt",
        _sweep("bbdd", "bbdd_cloud"),
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


def _cloud_kl(records: pd.DataFrame) -> str:
    """The point-cloud KL runs: value, error, floor, inner paths and weight spread per N."""
    runs = records[records.experiment == "bbdd_cloud_kl"]
    wide = runs.pivot_table(index=["d", "steps"], columns="metric", values="value")
    kl = runs[runs.metric == "kl"].set_index(["d", "steps"])
    if kl.empty:
        return "Point-cloud KL: no records."
    parts = [
        f"N = {n:g}: {r.value:.3g} ± {r.stderr:.2g} (floor {r.floor:.2g}; "
        f"{wide.loc[(d, n), 'paths']:g} paths, log-weight spread "
        f"{wide.loc[(d, n), 'log_weight_spread']:.2g}; {r.status})"
        for (d, n), r in kl.iterrows()
    ]
    reduction = ", ".join(sorted(set(kl.reduction.dropna())))
    return (
        f"Point-cloud KL (`bbdd_cloud_kl`, d = {', '.join(f'{d:g}' for d in sorted(set(runs.d)))}; "
        f"density ratios on the span of the points with the complement exact: {reduction}): "
        + "; ".join(parts)
        + "."
    )


def notes(records: pd.DataFrame) -> list[str]:
    product = records[(records.experiment == "bbdd") & (records.metric == "kl")]
    cloud = records[records.experiment == "bbdd_cloud"]
    return [
        common.looseness(product, rates.shape_bbdd, "d (T + log 1/δ)²/N on the product runs"),
        "",
        _cloud_kl(records),
        "",
        *common.bayes(cloud, "girsanov", ("steps", "d"), "Bayesian fit, point cloud"),
    ]
