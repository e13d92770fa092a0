"""ptw: Pfarr, Timofte, Werner 2026 (arXiv 2601.18425).

The claim: on strongly log-concave data the W2 error of an SDE scheme for the reverse process
falls like h^p, p the scheme's strong order (1 for Euler–Maruyama with additive noise, 1.5 for
SRA-type schemes), plus a floor from the score error. The bound is pathwise: the verdicts are
about the `strong` error (RMS distance to a fine reference on the same Brownian path), which
bounds W2 by coupling. The marginal W2 itself may fall like the weak order (2 for `sra1` and
Heun on Gaussian data), and is shown beside it: exact on the Gaussian (`gaussian_aniso`, a
power-law spectrum with a mean: N(0, I) would be left invariant by the flows), by a Gaussian
fit on the two-component target (`gmm_close`, ‖μ_1 − μ_2‖ ≈ 1 with unit covariances: strongly
log-concave). Sweeps `ptw` (em, ei, sra1; with and without a score error: the exact score of a
target shifted by ε = 0.1) and `ptw_flow` (probability-flow Euler and Heun, marginal W2 only).
"""

from __future__ import annotations

import pandas as pd

from experiments import common

NAME = "ptw"
SWEEPS = ["ptw", "ptw_flow"]
COMMAND = "make reproduce EXPERIMENTS='ptw ptw_flow'"
STRONG_ORDER = {"em": 1.0, "ei": 1.0, "sra1": 1.5}
WEAK_ORDER = {"em": 1.0, "ei": 1.0, "sra1": 2.0, "pf_euler": 1.0, "pf_heun": 2.0}


def prepare(records: pd.DataFrame) -> pd.DataFrame:
    """Adds `h`, the step size of the uniform grid in the OU clock."""
    return records.assign(h=(records["T"] - records.delta) / records.steps)


def _exact_score(sampler):
    return lambda r: r[(r.sampler == sampler) & (r.score_error == "none")]


SPECS = [
    *(
        common.Slope(
            f"strong error vs h, {s}",
            "strong",
            "h",
            ("target",),
            p,
            _exact_score(s),
            lower_is_better=False,
        )
        for s, p in STRONG_ORDER.items()
    ),
    *(
        common.Slope(
            f"marginal W2 vs h, {s}",
            "w2",
            "h",
            ("target",),
            p,
            _exact_score(s),
            lower_is_better=False,
            headline=False,
        )
        for s, p in WEAK_ORDER.items()
    ),
]

PANELS = [
    common.Panels(
        "strong_vs_h",
        "PTW: strong (pathwise) error against the step size",
        "strong",
        "h",
        "target",
        ("sampler", "score_error"),
        "RMS ‖Y_N − Y_ref‖",
        lambda r: r,
        (1.0, 1.5),
        xlabel="step size h",
    ),
    common.Panels(
        "w2_vs_h",
        "PTW: marginal W2 against the step size",
        "w2",
        "h",
        "target",
        ("sampler", "score_error"),
        "W2(q_δ, output)",
        lambda r: r,
        (1.0, 2.0),
        xlabel="step size h",
    ),
]


def _floor(records: pd.DataFrame) -> str:
    """The score-error floor: W2 at the smallest h with the error, against without."""
    r = common.ok(prepare(records))
    r = r[(r.metric == "w2") & (r.experiment == "ptw")]
    if r.empty or "misspecified" not in set(r.score_error):
        return ""
    small = r[r.h == r.h.min()]
    rows = small.pivot_table(index=["target", "sampler"], columns="score_error", values="value")
    if "none" not in rows:
        return ""
    eps = records[records.score_error == "misspecified"].eps_score.iloc[0]
    text = ", ".join(
        f"{t}/{s} {row.misspecified:.3g} (exact score {row.none:.3g})"
        for (t, s), row in rows.iterrows()
    )
    return f"Score-error floor (ε = {eps:g}), W2 at the smallest h: {text}."


def notes(records: pd.DataFrame) -> list[str]:
    return [_floor(records)]
