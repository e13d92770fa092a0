"""work_precision: which sampler and schedule buys a given error with the fewest score evaluations.

Not a paper's claim: a work–precision comparison as DiffEqDevTools draws it, the exact error of
every sampler on every schedule against its cost, NFE = N·e, N the steps and e the score
evaluations of one step (2 for `sra1` and `pf_heun`, 1 for the one-step rules and `pf_euler`;
counted from each sampler's own step, `score_evaluations`). Exact estimators only, on three
targets: `gaussian_aniso` in d = 2 (KL and W2 by `exact_gaussian`), `product_close` in d = 1
(a two-component mixture: one quadrature block, so KL, TV and W2 are quadratures) and the
uniform law on the 2-sphere of radius 0.5 in R³, centred (one radial block: the same three).
`sra1` runs on the Gaussian only: quadrature takes it on products alone, and there its
32-branch kernel needs 1024–2048 nodes once the steps fall to about 1e-3 (a run of 100 s at
N = 64 on `bbdd`, against 0.1 s for the others). Schedules `uniform`,
`bbdd`, `karras`, `logsnr`, `quadratic`, all at T = 5 and δ = 1e-2 (`bbdd` and `logsnr` need
δ > 0; `lcw` and `ddpm_linear` fix their own horizon and are left out), started from q_T, so
that the error is the discretisation's alone. Three sweeps: `work_precision` (the Gaussian),
`work_precision_product`, `work_precision_sphere`. The fits are each sampler's W2 against NFE
on the `logsnr` grid, against minus its declared weak order: near δ the score's Lipschitz
constant grows like 1/σ_s², and a grid whose steps shrink with σ_s² (equal steps in log-SNR)
keeps every step in the asymptotic regime that a uniform grid reaches only at N ≫ T/σ_δ².
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pandas as pd

from diffusion_rates import rates
from diffusion_rates.samplers import SAMPLERS
from diffusion_rates.schedules import Step
from experiments import common

NAME = "work_precision"
SWEEPS = ["work_precision", "work_precision_product", "work_precision_sphere"]
COMMAND = "make reproduce EXPERIMENTS='work_precision work_precision_product work_precision_sphere'"
# the errors the table asks the cheapest combination for (KL, TV and W2 levels, two each)
LEVELS = {"kl": (1e-2, 1e-3), "tv": (3e-2, 1e-2), "w2": (1e-2, 1e-3)}
FIT_SCHEDULE = "logsnr"
YLABELS = {"kl": "KL(q_δ ‖ output)", "tv": "TV(q_δ, output)", "w2": "W2(q_δ, output)"}
REFERENCE = {"kl": (-2.0, -4.0), "tv": (-1.0, -2.0), "w2": (-1.0, -2.0)}  # KL ~ (weak error)²


def score_evaluations(sampler) -> int:
    """Score evaluations in one step of `sampler`: its step run once, on one point, with a score
    that counts its calls (every step of these grids ends at s' ≥ δ > 0, where Heun takes both)."""
    calls = []

    def score(y, s):
        calls.append(s)
        return -y

    step = Step(*(jnp.asarray(v) for v in (1.0, 0.5, 0.5, 0.5)))
    sampler.step(jnp.ones((1, 1)), score, step, jnp.zeros((sampler.n_noise, 1, 1)))
    return len(calls)


EVALUATIONS = {name: score_evaluations(s) for name, s in SAMPLERS.items()}


def prepare(records: pd.DataFrame) -> pd.DataFrame:
    """Adds `nfe` = steps × the sampler's score evaluations per step."""
    return records.assign(nfe=records.steps * records.sampler.map(EVALUATIONS))


SPECS = [
    common.Slope(
        f"W2 vs NFE, {name}, {FIT_SCHEDULE} schedule",
        "w2",
        "nfe",
        ("target_config",),
        -sampler.weak_order,
        lambda r, name=name: r[(r.sampler == name) & (r.schedule == FIT_SCHEDULE)],
        headline=False,
    )
    for name, sampler in SAMPLERS.items()
]

PANELS = [
    common.Panels(
        f"{metric}_vs_nfe",
        f"Work–precision: exact {metric.upper()} against the score evaluations (T = 5, δ = 1e-2)",
        metric,
        "nfe",
        "target_config",
        ("sampler", "schedule"),
        YLABELS[metric],
        reference=REFERENCE[metric],
        xlabel="score evaluations (NFE)",
        size=(5.5, 4.6),  # up to 40 lines a panel
    )
    for metric in LEVELS
]


def cheapest(records: pd.DataFrame, levels: dict = LEVELS) -> pd.DataFrame:
    """Per target, metric and level: every sampler × schedule ranked by NFE*(level), the NFE
    from which the error stays at or below the level, log–log between the measured points
    (`rates.steps_to_reach`); a curve already under the level at its smallest NFE gets that NFE
    as an upper bound (`at_most`). Columns: target_config, metric, level, sampler, schedule,
    nfe, at_most, reason; rows in rank order, those that never reach the level last (nfe NaN)."""
    frame = common.ok(prepare(records))
    rows = []
    for metric, values in levels.items():
        for target, g in frame[frame.metric == metric].groupby("target_config"):
            smallest = g[g.value > 0].groupby(["sampler", "schedule"]).nfe.min()
            for level in values:
                table = rates.steps_to_reach_table(g, ["sampler", "schedule"], level, x="nfe")
                below = table.reason == "already below target at the smallest N"
                bound = smallest.reindex(pd.MultiIndex.from_frame(table[["sampler", "schedule"]]))
                table["nfe"] = np.where(below, bound.to_numpy(float), table.n_star)
                table["at_most"] = below.to_numpy()
                table = table.assign(target_config=target, metric=metric, level=level)
                rows.append(table.sort_values(["nfe", "sampler", "schedule"], na_position="last"))
    columns = ["target_config", "metric", "level", "sampler", "schedule", "nfe", "at_most"]
    return pd.concat(rows, ignore_index=True)[[*columns, "reason"]] if rows else pd.DataFrame()


def _nfe(r) -> str:
    return f"{'≤ ' if r.at_most else ''}{r.nfe:.0f}"


def cheapest_markdown(ranked: pd.DataFrame) -> list[str]:
    """One row per target, metric and level: the cheapest combination, the runner-up and how
    many of the combinations measured reach the level."""
    lines = [
        "| target | metric | level | cheapest sampler, schedule | NFE | runner-up (NFE) | "
        "reaching it |",
        "|---|---|---|---|---|---|---|",
    ]
    for (target, metric, level), g in ranked.groupby(
        ["target_config", "metric", "level"], sort=False
    ):
        reached = g[np.isfinite(g.nfe)]
        if reached.empty:
            best, nfe, second = "not reached", "—", "—"
        else:
            top = reached.iloc[0]
            best, nfe = f"{top.sampler}, {top.schedule}", _nfe(top)
            second = (
                f"{reached.iloc[1].sampler}, {reached.iloc[1].schedule} ({_nfe(reached.iloc[1])})"
                if len(reached) > 1
                else "—"
            )
        lines.append(
            f"| {target} | {metric} | {level:g} | {best} | {nfe} | {second} | "
            f"{len(reached)} of {len(g)} |"
        )
    return lines


def notes(records: pd.DataFrame) -> list[str]:
    evaluations = ", ".join(f"{s} {n}" for s, n in EVALUATIONS.items())
    return [
        "",
        f"Score evaluations per step (counted from each sampler's step): {evaluations}.",
        "",
        "Cheapest sampler and schedule to reach each error level, per target: NFE*(level), the "
        "score evaluations from which the error stays at or below the level, interpolated "
        "log–log between the measured points; ≤ where the smallest step count measured is "
        "already under it (two such bounds at the same NFE are a tie, listed alphabetically); "
        "not reached where no combination gets there at the largest N.",
        "",
        *cheapest_markdown(cheapest(records)),
    ]
