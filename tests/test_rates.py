"""rates.py: seed-bootstrap fits, N*(ε), the Bayesian fit, predicted shapes and verdicts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from diffusion_rates.rates import (
    PREDICTED_SHAPES,
    VERDICTS,
    Fit,
    bayes_loglog,
    fit_constant,
    fit_loglog,
    fit_loglog_seeds,
    steps_to_reach,
    steps_to_reach_detail,
    steps_to_reach_table,
    verdict,
)

STEPS = 2.0 ** np.arange(3, 11)  # 8 … 1024


def power_law_frame(n_seeds, slope=-1.0, noise=0.1, rng=None, a=2.0):
    """y = a·N^slope·exp(noise·z), z ~ N(0, 1) independent per (seed, N)."""
    rng = np.random.default_rng(0) if rng is None else rng
    rows = [
        dict(seed=s, steps=n, value=a * n**slope * np.exp(noise * rng.standard_normal()))
        for s in range(n_seeds)
        for n in STEPS
    ]
    frame = pd.DataFrame(rows)
    frame["floor"] = 0.0
    frame["stderr"] = 0.0
    return frame


# --- fit_loglog_seeds ----------------------------------------------------------------------------


def test_bootstrap_interval_covers_true_slope_at_about_its_level():
    rng = np.random.default_rng(1)
    fits = [fit_loglog_seeds(power_law_frame(10, rng=rng), n_boot=500) for _ in range(40)]
    covered = np.mean([f.ci_low <= -1.0 <= f.ci_high for f in fits])
    assert covered >= 0.8  # nominal 95%; the percentile bootstrap over 10 seeds runs a bit narrow
    assert all(f.method == "bootstrap over 10 seeds" and f.n_points == len(STEPS) for f in fits)
    # and the interval is not trivially wide: the slope's sd is 0.1/sqrt(10)/sd(log N) ≈ 0.02
    assert np.median([f.ci_high - f.ci_low for f in fits]) < 0.15
    assert abs(np.mean([f.slope for f in fits]) + 1.0) < 0.01


def test_bootstrap_interval_narrows_with_more_seeds():
    rng = np.random.default_rng(2)
    width = {}
    for k in (5, 80):
        fits = [fit_loglog_seeds(power_law_frame(k, rng=rng), n_boot=500) for _ in range(10)]
        width[k] = np.median([f.ci_high - f.ci_low for f in fits])
        assert np.mean([f.ci_low <= -1.0 <= f.ci_high for f in fits]) >= 0.7
    assert width[80] < width[5] / 2.5  # ∝ 1/sqrt(k): 4 in expectation


def test_bootstrap_resamples_whole_seeds():
    """A per-seed offset in log y is common to all N: whole-seed resampling leaves the slope unmoved
    (zero-width interval) whereas resampling single points would not."""
    frame = power_law_frame(8, noise=0.0)
    offsets = np.random.default_rng(3).normal(0, 1.0, 8)
    frame["value"] *= np.exp(offsets[frame.seed])
    fit = fit_loglog_seeds(frame)
    assert fit.method == "bootstrap over 8 seeds"
    assert fit.ci_high - fit.ci_low < 1e-9
    assert fit.slope == pytest.approx(-1.0, abs=1e-12)
    assert fit.intercept == pytest.approx(np.log(2.0) + offsets.mean())  # mean of log y over seeds


def test_bootstrap_is_deterministic_for_a_given_rng_seed():
    frame = power_law_frame(6)
    a, b, c = (fit_loglog_seeds(frame, rng_seed=s) for s in (5, 5, 6))
    assert (a.ci_low, a.ci_high) == (b.ci_low, b.ci_high)
    assert (a.ci_low, a.ci_high) != (c.ci_low, c.ci_high)


def test_one_seed_falls_back_to_residual_t():
    frame = power_law_frame(1)
    fit = fit_loglog_seeds(frame)
    ref = fit_loglog(frame.steps, frame.value)
    assert fit.method == "residual t"
    np.testing.assert_allclose(
        [fit.slope, fit.ci_low, fit.ci_high], [ref.slope, ref.ci_low, ref.ci_high]
    )
    # identical seeds (an exact estimator) carry no more information than one seed
    same = pd.concat([frame.assign(seed=s) for s in range(5)])
    assert fit_loglog_seeds(same).method == "residual t"
    assert fit_loglog_seeds(same).ci_low == pytest.approx(ref.ci_low)


def test_points_under_the_floor_are_excluded_and_listed():
    frame = power_law_frame(3, noise=0.0)
    frame["floor"] = 1e-4  # the estimator returns its floor once the error is below it
    frame["value"] = np.maximum(frame.value, 1e-4)  # 2/N: 10×floor = 1e-3 ⇒ N ≥ 2048 unusable
    frame.loc[frame.steps >= 1024, "value"] = 1.5e-4 + 1e-5 * frame.seed  # a plateau, < 10×floor
    frame.loc[(frame.seed == 1) & (frame.steps == 8), "stderr"] = 0.1  # 3×stderr = 0.3 > 0.25
    frame.loc[(frame.seed == 2) & (frame.steps == 16), "value"] = np.nan
    fit = fit_loglog_seeds(frame)
    excluded = sorted(fit.excluded)
    assert excluded == sorted(
        [(1024.0, s, "under 10x the floor") for s in range(3)]
        + [(8.0, 1, "under 3 standard errors"), (16.0, 2, "not finite")]
    )
    assert fit.n_points == len(STEPS) - 1
    assert fit.slope == pytest.approx(-1.0, abs=1e-9)  # the plateau would flatten it
    # the plain fit agrees on which points to drop
    assert fit_loglog(frame.steps, frame.value, frame.floor, frame.stderr).n_points == 3 * 7 - 2


# --- N*(ε) ---------------------------------------------------------------------------------------


def test_steps_to_reach_is_exact_on_a_power_law():
    for a, p, target in ((5.0, -1.0, 0.01), (3.0, -2.0, 1e-4), (0.7, -0.5, 0.05)):
        n_star = (target / a) ** (1 / p)
        assert STEPS[0] < n_star < STEPS[-1]
        assert steps_to_reach(STEPS, a * STEPS**p, target) == pytest.approx(n_star, rel=1e-12)
    # unsorted input gives the same answer
    perm = np.random.default_rng(0).permutation(len(STEPS))
    assert steps_to_reach(STEPS[perm], (5 / STEPS)[perm], 0.01) == pytest.approx(500.0)


def test_steps_to_reach_uses_the_last_crossing_and_says_why_not():
    values = np.array([1.0, 0.05, 0.2, 0.08, 0.04, 0.02, 0.01, 0.005])  # dips under 0.1 early
    n_star = steps_to_reach(STEPS, values, 0.1)
    assert STEPS[2] < n_star < STEPS[3]  # crossing between 0.2 and 0.08, not the early dip
    assert steps_to_reach_detail(STEPS, 1 / STEPS, 1e-6) == (
        pytest.approx(np.nan, nan_ok=True),
        "not reached by the largest N",
    )
    assert (
        steps_to_reach_detail(STEPS, 1 / STEPS, 0.5)[1] == "already below target at the smallest N"
    )
    assert np.isnan(steps_to_reach(STEPS, 1 / STEPS, 0.5))


def test_steps_to_reach_table_per_group_with_geometric_mean_over_seeds():
    rows = []
    for d in (2, 8, 32):
        for seed, wobble in enumerate((np.e, 1 / np.e)):  # cancels in the mean of log value
            rows += [dict(d=d, seed=seed, steps=n, value=d / n * wobble) for n in STEPS]
    frame = pd.DataFrame(rows).assign(floor=1e-5, stderr=0.0)
    table = steps_to_reach_table(frame, by=["d"], target=0.05)
    assert list(table.columns) == ["d", "n_star", "reason", "n_points", "target"]
    np.testing.assert_allclose(table.n_star, np.array([2, 8, 32]) / 0.05, rtol=1e-12)
    assert set(table.reason) == {"ok"}
    # slope of N* against d is 1
    assert fit_loglog(table.d, table.n_star).slope == pytest.approx(1.0)
    # a target within 10x of the floor gives no N*
    low = steps_to_reach_table(frame, by=["d"], target=5e-5)
    assert low.n_star.isna().all() and low.reason.str.contains("floor").all()


# --- Bayesian fit --------------------------------------------------------------------------------


@pytest.mark.slow
def test_bayes_loglog_recovers_exponents():
    rng = np.random.default_rng(4)
    rows = [
        dict(steps=n, d=d, value=3.0 * d / n * np.exp(0.05 * rng.standard_normal()))
        for n in 2.0 ** np.arange(3, 11)
        for d in 2.0 ** np.arange(0, 7, 1.5)
    ]
    frame = pd.DataFrame(rows).assign(floor=0.0, stderr=0.0)
    frame.loc[0, "floor"] = 1.0  # one unusable point: must be left out, not fitted
    frame.loc[0, "value"] = 5.0  # < 10 × floor; fitted, it would pull every coefficient
    post = bayes_loglog(frame, num_warmup=300, num_samples=600).set_index("param")
    assert list(post.index) == ["c", "steps", "d", "tau"]
    for name, truth in (("steps", -1.0), ("d", 1.0)):
        assert post.loc[name, "2.5%"] <= truth <= post.loc[name, "97.5%"], name
    # with flat-ish priors the posterior mean is the least-squares fit on the usable points only
    used = frame.iloc[1:]
    design = np.column_stack([np.ones(len(used)), np.log(used.steps), np.log(used.d)])
    ols = np.linalg.lstsq(design, np.log(used.value), rcond=None)[0]
    mean, sd = (post.loc[["c", "steps", "d"], k].to_numpy() for k in ("mean", "sd"))
    assert np.all(np.abs(mean - ols) < 0.3 * sd)
    assert post.loc["steps", "97.5%"] - post.loc["steps", "2.5%"] < 0.1
    assert post.loc["tau", "mean"] == pytest.approx(0.05, rel=0.4)
    assert (post.r_hat < 1.1).all()


# --- predicted shapes ----------------------------------------------------------------------------


def test_predicted_shapes_formulas():
    assert PREDICTED_SHAPES["bbdd"](d=4, T=2.0, delta=np.exp(-3.0), steps=10) == pytest.approx(
        4 * 25 / 10
    )
    assert PREDICTED_SHAPES["lcw"](K=4, steps=16) == pytest.approx(
        np.log(64) ** 2 * np.log(16) ** 2 / 16
    )
    assert PREDICTED_SHAPES["pad"](intrinsic_dim=3, steps=100) == pytest.approx(
        3 * np.log(100) ** 2 / 100
    )
    assert PREDICTED_SHAPES["ptw"](h=0.01, p=1.5) == pytest.approx(1e-3)


def test_fit_constant_recovers_C_and_looseness_at_most_one():
    grid = pd.DataFrame(
        dict(
            d=np.repeat([2.0, 16.0], 4),
            intrinsic_dim=np.repeat([1.0, 4.0], 4),
            K=np.repeat([4.0, 64.0], 4),
            T=6.0,
            delta=1e-3,
            steps=np.tile([16.0, 64.0, 256.0, 1024.0], 2),
            h=np.tile([0.1, 0.05, 0.02, 0.01], 2),
            p=1.0,
            unrelated="x",
        )
    )
    for name, shape in PREDICTED_SHAPES.items():
        exact = 7.0 * np.asarray(shape(**{k: grid[k] for k in _args(shape)}))
        res = fit_constant(grid, exact, shape)
        assert res.C == pytest.approx(7.0, rel=1e-12), name
        assert res.C_sup == pytest.approx(7.0, rel=1e-12), name
        np.testing.assert_allclose(res.ratio, 1.0, rtol=1e-12)
        # a bound that is loose at large N: measured falls faster than the shape
        loose = exact * (16.0 / grid.steps.to_numpy()) ** 0.5
        res = fit_constant(grid, loose, shape)
        geometric = 7.0 * np.exp(np.mean(0.5 * np.log(16.0 / grid.steps)))
        assert res.C == pytest.approx(geometric, rel=1e-12)  # fitted in log space
        assert np.all(res.looseness <= 1.0 + 1e-12) and np.max(res.looseness) == pytest.approx(1)
        assert res.looseness.min() == pytest.approx(0.125)  # (16/1024)^0.5
        assert res.C_sup >= res.C
    # a dict works too, and y may name a column
    res = fit_constant(
        {"h": [0.1, 0.01], "p": 2.0, "w": [0.03, 3e-4]}, "w", shape=PREDICTED_SHAPES["ptw"]
    )
    assert res.C == pytest.approx(3.0)


def _args(shape):
    import inspect

    return list(inspect.signature(shape).parameters)


# --- verdict -------------------------------------------------------------------------------------


def make_fit(slope, half=0.05, n=5):
    return Fit(slope, 0.0, half / 2, slope - half, slope + half, n, [])


def test_verdict_returns_each_label():
    assert verdict(make_fit(-1.05), -1.0) == "consistent"
    assert verdict(make_fit(-1.3, half=0.15), -1.0) == "consistent"  # interval meets the band
    assert verdict(make_fit(-2.0), -1.0) == "faster than predicted"
    assert verdict(make_fit(-0.5), -1.0) == "slower than predicted"
    # N* against d: 0.5 against a predicted 1 is a better (smaller) N*
    assert verdict(make_fit(0.5), 1.0) == "faster than predicted"
    assert verdict(make_fit(1.6), 1.0) == "slower than predicted"
    # a quantity that should grow: higher is better
    assert verdict(make_fit(2.0), 1.5, lower_is_better=False) == "faster than predicted"
    assert verdict(make_fit(1.0), 1.5, lower_is_better=False) == "slower than predicted"
    # inconclusive: too few points, no interval, interval wider than 4×tolerance
    assert verdict(make_fit(-2.0, n=2), -1.0) == "inconclusive"
    assert verdict(Fit(-2.0, 0, np.nan, np.nan, np.nan, 5, []), -1.0) == "inconclusive"
    assert verdict(make_fit(-2.0, half=0.41), -1.0) == "inconclusive"
    assert verdict(make_fit(-2.0, half=0.39), -1.0) == "faster than predicted"
    assert {verdict(make_fit(s), -1.0) for s in (-1.0, -2.0, -0.5)} | {"inconclusive"} == set(
        VERDICTS
    )


def test_verdict_on_a_real_fit():
    frame = power_law_frame(16, slope=-2.0, rng=np.random.default_rng(7))
    fit = fit_loglog_seeds(frame)
    assert verdict(fit, -2.0) == "consistent"
    assert verdict(fit, -1.0) == "faster than predicted"
    assert verdict(fit._replace(n_points=2), -2.0) == "inconclusive"
