"""pad: Potaptchik, Azangulov, Deligiannidis 2025 (arXiv 2410.09046).

The claim: for data on a compact d-dimensional manifold in R^D, their scheme (DDPM with the
posterior variance, PAD Eq. 4) on the `bbdd` schedule has KL ≲ ε² + D e^{−2T} + d·polylog/N:
linear in the intrinsic d and free of the ambient D; the exponential integrator instead pays
∝ D. Predicted: KL against D at fixed (d, N) has slope 0 for `ddpm_posterior` and 1 for `ei`;
N*(ε) grows linearly in d. Sweep `pad`: uniform laws on spheres S^d and tori (S¹)^d of radius
0.5 (diameter 1), centred (the quadrature needs the rotation symmetry about 0; PAD puts 0 on the
manifold, which only moves the data by a fixed vector), KL by quadrature, exact up to its grid
at any D. The torus's KL is additive over its circles, so its d-dependence is a calibration;
the sphere is the real test.
"""

from __future__ import annotations

import pandas as pd

from diffusion_rates import rates
from experiments import common

NAME = "pad"
SWEEPS = ["pad"]
COMMAND = "make reproduce EXPERIMENTS=pad"
KL_LEVEL = 1e-3  # ε² at which N*(ε) is read off (ddpm_posterior, largest D)


def _sampler(name):
    return lambda r: r[r.sampler == name]


def _nstar(r):
    return r[(r.sampler == "ddpm_posterior") & (r.d == r.d.max())]


SPECS = [
    common.Slope(
        "KL vs D, ddpm_posterior",
        "kl",
        "d",
        ("target", "intrinsic_dim", "steps"),
        0.0,
        _sampler("ddpm_posterior"),
    ),
    common.Slope(
        "KL vs D, ei", "kl", "d", ("target", "intrinsic_dim", "steps"), 1.0, _sampler("ei")
    ),
    common.Slope(
        "KL vs N, ddpm_posterior",
        "kl",
        "steps",
        ("target", "intrinsic_dim", "d"),
        -1.0,
        _sampler("ddpm_posterior"),
        headline=False,
    ),
    common.NStar(
        f"N*(KL = {KL_LEVEL:g}) vs intrinsic d",
        "kl",
        KL_LEVEL,
        "intrinsic_dim",
        ("target",),
        1.0,
        _nstar,
    ),
]

PANELS = [
    common.Panels(
        "kl_vs_ambient",
        "PAD: KL against the ambient dimension D",
        "kl",
        "d",
        "sampler",
        ("target", "intrinsic_dim", "steps"),
        "KL(q_δ ‖ output)",
        lambda r: r[r.steps == r.steps.max()],
        (0.0, 1.0),
        xlabel="ambient D",
    ),
    common.Panels(
        "kl_vs_steps",
        "PAD: KL against N (largest D)",
        "kl",
        "steps",
        "target",
        ("sampler", "intrinsic_dim"),
        "KL(q_δ ‖ output)",
        lambda r: r[r.d == r.d.max()],
        (-1.0,),
    ),
]


def notes(records: pd.DataFrame) -> list[str]:
    kl = records[(records.metric == "kl") & (records.sampler == "ddpm_posterior")]
    return [common.looseness(kl, rates.shape_pad, "d·log²N/N for ddpm_posterior")]
