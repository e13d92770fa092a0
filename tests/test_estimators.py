"""Estimators against exact laws, null tests, and the selection rules."""

import jax
import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from diffusion_rates import config, metrics
from diffusion_rates.app import CONFIG_DIR
from diffusion_rates.metrics import density_ratio, exact, path, samples
from diffusion_rates.process import ou
from diffusion_rates.samplers import SAMPLERS, sample
from diffusion_rates.schedules import make_grid
from diffusion_rates.targets import TARGETS
from diffusion_rates.targets.gaussian import gaussian
from diffusion_rates.validation import ConfigError

KEY = jax.random.PRNGKey(0)

FIXED_16 = density_ratio.Options(paths=16, max_paths=16)  # M = 16 inner paths, no doubling


def composed(*overrides):
    with initialize_config_dir(CONFIG_DIR, version_base=None):
        return compose("config", overrides=[*overrides, "output.dir=unused"])


@pytest.mark.parametrize(
    "d,steps", [(1, 64), (10, 64), pytest.param(200, 1024, marks=pytest.mark.slow)]
)
def test_density_ratio_agrees_with_exact(d, steps):
    """Path KL grows like d/N: at d = 200 the spread is small only from N ~ 1000."""
    target = gaussian(d, "power_law", mean_norm=1.0)
    grid = make_grid(ou(), "bbdd", 8.0, 1e-2, steps)
    ddpm = SAMPLERS["ddpm"]
    kl_exact = exact.exact_gaussian(ddpm, target, grid, ["kl"])["kl"][0]
    got = density_ratio.estimate(ddpm, target.score, target, grid, 512, KEY, options=FIXED_16)
    assert got["log_weight_spread"][0] < 1.0  # small spread: the estimate must be accurate
    value, stderr, floor = got["kl"]  # bias-corrected: within 3 standard errors, floor aside
    assert abs(value - kl_exact) < 3 * stderr, (value, stderr, floor, kl_exact)
    mean, se, _ = got["ratio_mean"]
    assert abs(mean - 1.0) < 3 * se


def test_density_ratio_null_when_the_sampler_is_exact():
    """DDPM is exact on N(0, I): r = 1, so kl and tv vanish and E r̂ = 1 to rounding."""
    target = gaussian(8, "flat")
    grid = make_grid(ou(), "uniform", 6.0, 1e-3, 32)
    got = density_ratio.estimate(
        SAMPLERS["ddpm"], target.score, target, grid, 256, KEY, options=FIXED_16
    )
    assert abs(got["kl"][0]) < 1e-10 and got["tv"][0] < 1e-10
    assert abs(got["ratio_mean"][0] - 1.0) < 1e-10


@pytest.mark.parametrize("d", [1, 10])
def test_path_kl_bounds_the_marginal_kl(d):
    target = gaussian(d, "power_law", mean_norm=1.0)
    grid = make_grid(ou(), "bbdd", 8.0, 1e-2, 32)
    for name in ("ei", "ddpm", "em"):
        kl = exact.exact_gaussian(SAMPLERS[name], target, grid, ["kl"], "target")["kl"][0]
        value, stderr = path.kl_path(
            SAMPLERS[name], target.score, target, grid, 2048, KEY, "target"
        )
        assert value + 3 * stderr >= kl, (name, value, stderr, kl)
    value, stderr = path.girsanov(target.score, target, grid, 512, KEY)
    kl_ei = exact.exact_gaussian(SAMPLERS["ei"], target, grid, ["kl"], "target")["kl"][0]
    assert value + 3 * stderr >= kl_ei


def test_girsanov_is_zero_without_discretisation():
    """One point per step where the score is frozen at its own time: with an exact score and a
    vanishing step the integrand vanishes; a finer grid gives a smaller integral (∝ 1/N)."""
    target = gaussian(4, "power_law", mean_norm=1.0)
    coarse, fine = (
        path.girsanov(target.score, target, make_grid(ou(), "bbdd", 6.0, 1e-2, n), 512, KEY)[0]
        for n in (32, 128)
    )
    assert fine < coarse / 3.0


def output_samples(sampler, target, grid, n, key):
    y0 = jax.random.normal(key, (n, target.d))
    return sample(sampler, target.score, grid, y0, jax.random.fold_in(key, 1))


@pytest.mark.parametrize("d", [1, 10])
def test_gaussian_fit_w2_agrees_with_exact(d):
    target = gaussian(d, "power_law", mean_norm=1.0)
    grid = make_grid(ou(), "uniform", 6.0, 1e-2, 16)
    sampler = SAMPLERS["ei"]
    w2 = exact.exact_gaussian(sampler, target, grid, ["w2"])["w2"][0]
    n = 4096
    x = target.sample(jax.random.PRNGKey(1), n, grid.s[-1])
    ref = target.sample(jax.random.PRNGKey(2), n, grid.s[-1])
    y = output_samples(sampler, target, grid, n, jax.random.PRNGKey(3))
    value, stderr, floor = samples.with_floor("gaussian_fit", x, y, ref, KEY)
    assert abs(value - w2) < 4 * stderr + floor, (value, stderr, floor, w2)


@pytest.mark.parametrize("name", sorted(samples.ESTIMATES))
def test_sample_estimators_are_null_on_equal_laws(name):
    """The estimator on two exact samples of the target is within its floor's spread."""
    target = gaussian(3, "power_law", mean_norm=1.0)
    n = 512
    x, y, ref = (target.sample(jax.random.PRNGKey(i), n, 0.01) for i in range(3))
    value, stderr, floor = samples.with_floor(name, x, y, ref, KEY)
    assert abs(value - floor) < 5 * stderr + 1e-12, (value, stderr, floor)
    shifted = y + 1.0  # and it sees a real difference
    far, far_se, _ = samples.with_floor(name, x, shifted, ref, KEY)
    assert far > floor + 5 * far_se


def test_exact_kl_of_a_law_to_itself_is_within_the_floor():
    target = gaussian(50, "power_law", mean_norm=1.0)
    grid = make_grid(ou(), "uniform", 6.0, 1e-3, 8)
    m, v = target.eigen_mean(grid.s[-1]), target.eigen_variances(grid.s[-1])
    assert exact.kl_gaussian(m, v, m, v) == 0.0 and exact.w2_gaussian(m, v, m, v) == 0.0


def test_selection_picks_the_best_valid_estimator():
    cfg = composed("target.d=4", "sampler=ddpm")
    grid = config.build(cfg).grid
    assert metrics.select("kl", config.settings(cfg), grid) == "exact_gaussian"
    assert metrics.select("tv", config.settings(cfg), grid) == "density_ratio"
    assert metrics.select("w2", config.settings(cfg), grid) == "exact_gaussian"
    mixture = composed("target=gmm", "sampler=ddpm")
    assert metrics.select("kl", config.settings(mixture), grid) == "density_ratio"
    assert metrics.select("w2", config.settings(mixture), grid) == "gaussian_fit"


@pytest.mark.parametrize(
    "overrides,key",
    [
        (["sampler=ddim", "metrics=[tv]"], "metrics"),  # no density for a deterministic map
        (["target=gmm", "sampler=ddim", "estimator.kl=density_ratio"], "estimator.kl"),
        (["estimator.w2=density_ratio"], "estimator.w2"),
        (["estimator.kl=banana"], "estimator.kl"),
    ],
)
def test_an_estimator_where_it_is_not_valid_is_an_error(overrides, key):
    cfg = composed(*overrides)
    with pytest.raises(ConfigError, match=rf"^{key}:"):
        config.validate(cfg)


def test_density_ratio_records_carry_their_checks():
    cfg = composed("target.d=3", "sampler=ddpm", "metrics=[tv]", "n_samples=256", "steps=16")
    run = config.build(cfg)
    out = metrics.measure(run)
    assert {"tv", "ratio_mean", "log_weight_spread"} <= set(out)
    estimator, mean = out["ratio_mean"]
    assert estimator == "density_ratio" and abs(mean.value - 1) < 3 * mean.stderr + 1e-12


def test_density_ratio_records_say_their_reduction_and_a_missed_floor_target():
    """A mixture of N(μ_k, I): every density_ratio row names the span it ran on; a budget too
    small for the floor target keeps the values and says so in the status."""
    cfg = composed(
        "target=lcw_gmm",
        "target.d=6",
        "target.K=2",
        "sampler=ddpm",
        "schedule=lcw",
        "steps=64",
        "metrics=[tv,kl]",
        "n_samples=64",
        "density_ratio.paths=4",
        "density_ratio.max_paths=8",
        "density_ratio.floor_target=1e-6",
    )
    out = metrics.measure(config.build(cfg))
    rows = {m: v for m, (e, v) in out.items() if e == "density_ratio"}
    assert set(rows) == {"tv", "kl", *density_ratio.CHECKS}
    for value in rows.values():
        assert value.reduction == "span:2+4"
        assert value.status.startswith("floor target missed") and "max_paths=8" in value.status
    assert rows["paths"].value == 8 and np.isfinite(rows["tv"].value)


@pytest.mark.slow
def test_density_ratio_on_lcw_gmm_in_high_dimension():
    """density_ratio stays usable for DDPM on lcw_gmm at d = 1024 (K = 64, N = 256)."""
    c = OmegaConf.merge(OmegaConf.load(f"{CONFIG_DIR}/target/lcw_gmm.yaml"), {"d": 1024, "K": 64})
    target = TARGETS["lcw_gmm"].build(c)
    grid = make_grid(ou(), "lcw", None, 0.0, 256, c0=2.0, c1=10.0)
    got = density_ratio.estimate(
        SAMPLERS["ddpm"], target.score, target, grid, 256, KEY, options=FIXED_16
    )
    assert got["log_weight_spread"][0] < 1.0
    assert abs(got["ratio_mean"][0] - 1) < 3 * got["ratio_mean"][1]
