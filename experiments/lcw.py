"""lcw: Li, Cai, Wei 2025 (arXiv 2504.05300).

The claim: DDPM with their logistic ᾱ schedule on data Σ π_k N(μ_k, I_d) reaches
TV(X_0, Y_0) ≲ log²(KN) log²N / N + ε_score √(log N): about 1/N, free of the dimension d and of
the number of components K. Predicted: TV ∝ N⁻¹ (up to logarithms), and a slope 0 of TV against
d and against K at fixed N. Sweep `lcw`: `lcw_gmm` (identity covariances, K equal-norm means
spanning min(K, d) directions, so a d-sweep is not trivially d-free), TV and KL by density
ratios (δ = 0). Controls in `lcw_controls`: two means only (the chain splits exactly into their
span and a complement where DDPM is exact: d-free by construction) and the exponential
integrator, which is not exact in the complement.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from diffusion_rates import rates
from experiments import common

NAME = "lcw"
SWEEPS = ["lcw", "lcw_controls"]
COMMAND = "make reproduce EXPERIMENTS='lcw lcw_controls'"


def _main(r):
    return r[r.experiment == "lcw"]


def _controls(sampler):
    return lambda r: r[(r.experiment == "lcw_controls") & (r.sampler == sampler)]


SPECS = [
    common.Slope("TV vs N", "tv", "steps", ("K", "d"), -1.0, _main),
    common.Slope("TV vs d at fixed N", "tv", "d", ("K", "steps"), 0.0, _main),
    common.Slope("TV vs K at fixed N", "tv", "K", ("d", "steps"), 0.0, _main),
    common.Slope(
        "control, 2 means: TV vs d", "tv", "d", ("steps",), 0.0, _controls("ddpm"), headline=False
    ),
    common.Slope(
        "control, ei: TV vs d", "tv", "d", ("steps",), 0.0, _controls("ei"), headline=False
    ),
    common.Slope(
        "control, 2 means: TV vs N", "tv", "steps", ("d",), -1.0, _controls("ddpm"), headline=False
    ),
]

PANELS = [
    common.Panels(
        "tv_vs_steps",
        "LCW: TV against N (DDPM, lcw schedule, density ratios)",
        "tv",
        "steps",
        "K",
        ("d",),
        "TV(X_0, Y_0)",
        _main,
        (-1.0,),
    ),
    common.Panels(
        "tv_vs_d",
        "LCW: TV against d at fixed N",
        "tv",
        "d",
        "K",
        ("steps",),
        "TV(X_0, Y_0)",
        _main,
        (0.0,),
    ),
    common.Panels(
        "controls",
        "LCW controls: two means (ddpm) and the exponential integrator",
        "tv",
        "steps",
        "sampler",
        ("d",),
        "TV(X_0, Y_0)",
        lambda r: r[r.experiment == "lcw_controls"],
        (-1.0,),
    ),
]


def fits(records: pd.DataFrame) -> pd.DataFrame:
    return common.fit_table(records, SPECS)


def figures(records: pd.DataFrame, out_dir: Path) -> list[Path]:
    return [common.draw(records, spec, out_dir)[0] for spec in PANELS]


def _looseness(records: pd.DataFrame) -> str:
    tv = common.ok(_main(records))
    tv = tv[(tv.metric == "tv") & (tv.value > 0)]
    if tv.empty:
        return ""
    fit = rates.fit_constant(tv, tv.value.to_numpy(), rates.shape_lcw)
    return (
        f"Bound log²(KN) log²N / N: fitted constant {fit.C:.2g}, tightest {fit.C_sup:.2g}; "
        f"measured ÷ tightest bound from {np.min(fit.looseness):.2g} to "
        f"{np.max(fit.looseness):.2g}."
    )


def section(records: pd.DataFrame, table: pd.DataFrame, figures: list[str]) -> str:
    posterior = common.bayes(_main(records), "tv", ("steps", "d", "K"), "Bayesian fit")
    reading = [common.reading(table), _looseness(records), "", *posterior]
    return common.section(NAME, __doc__, records, table, figures, COMMAND, reading)


def summary(table: pd.DataFrame, figures: list[str]) -> list[dict]:
    return common.summary(table, NAME, figures[0])
