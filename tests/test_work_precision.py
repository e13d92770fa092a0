"""experiments/work_precision.py: score evaluations per step, NFE, and the cheapest sampler and
schedule to reach an error level, on synthetic records."""

import numpy as np
import pandas as pd
import pytest

from diffusion_rates.samplers import SAMPLERS
from experiments import work_precision as wp


def test_score_evaluations_are_counted_from_each_samplers_step():
    assert wp.EVALUATIONS == {name: 2 if name in ("sra1", "pf_heun") else 1 for name in SAMPLERS}


def test_nfe_is_steps_times_the_evaluations_per_step():
    recs = pd.DataFrame(dict(sampler=["ei", "pf_heun", "sra1"], steps=[8, 8, 16]))
    assert wp.prepare(recs).nfe.tolist() == [8, 16, 32]


def curve(sampler, schedule, values, steps=(8, 16, 32, 64), metric="kl", target="t"):
    return pd.DataFrame(
        dict(
            target_config=target,
            metric=metric,
            sampler=sampler,
            schedule=schedule,
            steps=steps,
            value=values,
            stderr=0.0,
            floor=0.0,
            status="ok",
        )
    )


def test_the_cheapest_combination_is_picked_with_log_log_interpolation():
    records = pd.concat(
        [
            # KL = 1/N: reaches 1e-2 at N = 100, past the largest N: never
            curve("ei", "uniform", [1 / 8, 1 / 16, 1 / 32, 1 / 64]),
            # KL = 2/N²: 1e-2 at N = √200 ≈ 14.1 steps = 28.3 evaluations
            curve("pf_heun", "karras", [2 / n**2 for n in (8, 16, 32, 64)]),
            # KL = 1/N²: 1e-2 at N = 10
            curve("em", "logsnr", [1 / n**2 for n in (8, 16, 32, 64)]),
            # under the level already at the smallest N = 8: at most 8 evaluations
            curve("ddpm", "bbdd", [1e-3, 5e-4, 2e-4, 1e-4]),
        ]
    )
    ranked = wp.cheapest(records, {"kl": (1e-2,)})
    assert ranked[["sampler", "schedule"]].values.tolist() == [
        ["ddpm", "bbdd"],
        ["em", "logsnr"],
        ["pf_heun", "karras"],
        ["ei", "uniform"],
    ]
    assert ranked.nfe.iloc[0] == 8 and ranked.at_most.iloc[0]
    assert ranked.nfe.iloc[1] == pytest.approx(10.0)
    assert ranked.nfe.iloc[2] == pytest.approx(2 * np.sqrt(200.0))
    assert np.isnan(ranked.nfe.iloc[3]) and ranked.reason.iloc[3] == "not reached by the largest N"
    table = "\n".join(wp.cheapest_markdown(ranked))
    assert "| t | kl | 0.01 | ddpm, bbdd | ≤ 8 | em, logsnr (10) | 3 of 4 |" in table


def test_a_level_no_combination_reaches_is_said():
    records = curve("ei", "uniform", [1 / 8, 1 / 16, 1 / 32, 1 / 64])
    table = wp.cheapest_markdown(wp.cheapest(records, {"kl": (1e-3,)}))
    assert table[-1] == "| t | kl | 0.001 | not reached | — | — | 0 of 1 |"


def test_failed_runs_are_left_out_of_the_ranking():
    good = curve("em", "logsnr", [1 / n**2 for n in (8, 16, 32, 64)])
    bad = curve("ei", "karras", [1e-9] * 4).assign(status="non-finite: folded")
    ranked = wp.cheapest(pd.concat([good, bad]), {"kl": (1e-2,)})
    assert ranked.sampler.tolist() == ["em"]
