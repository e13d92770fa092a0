"""The `strong` estimator: Brownian assembly, strong orders on a Gaussian, the reference's floor,
and the samplers it refuses."""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from diffusion_rates import config, metrics
from diffusion_rates.app import CONFIG_DIR
from diffusion_rates.metrics import strong
from diffusion_rates.rates import fit_loglog
from diffusion_rates.samplers import SAMPLERS
from diffusion_rates.schedules import Grid
from diffusion_rates.validation import ConfigError


def _composed(*overrides):
    with initialize_config_dir(CONFIG_DIR, version_base=None):
        return compose("config", overrides=list(overrides))


def _fine(m, gamma, n, seed=0):
    z = jax.random.normal(jax.random.PRNGKey(seed), (m, 2, n))
    return strong.fine_increments(jnp.moveaxis(z, 1, 0), gamma / m)


def _within(mc, exact, se, k=5.0):
    return abs(mc - exact) < k * se


def test_assembled_increments_have_the_brownian_covariance():
    """Coarse (ΔW, I_(1,0)) summed from M fine pieces: Var ΔW = γ, Cov = γ²/2, Var I = γ³/3
    (Monte Carlo, 5 standard errors); and the sra1 noise built from them is two independent
    standard normals."""
    m, gamma, n = 16, 0.7, 2**18
    dW, I = _fine(m, gamma, n)
    W, I_c, _ = strong.assemble(dW, I, gamma / m)
    W, I_c = np.asarray(W), np.asarray(I_c)
    for a, b, exact in [(W, W, gamma), (W, I_c, gamma**2 / 2), (I_c, I_c, gamma**3 / 3)]:
        prod = a * b
        assert _within(prod.mean(), exact, prod.std() / np.sqrt(n)), (prod.mean(), exact)
    z = np.asarray(strong.sra1_noise(W, I_c, gamma))
    cov = z @ z.T / n
    assert np.all(np.abs(cov - np.eye(2)) < 5 * np.sqrt(2.0 / n)), cov


def test_ei_noise_is_the_variation_of_constants_integral():
    """E = Σ_j e^{γ−jh}((1−h)ΔW_j + I_j) against X = ∫_0^γ e^{γ−u} dW_u: its covariances with
    ΔW and I_(1,0) match X's (e^γ − 1 and (γ − 1)e^γ + 1, up to the O(h²) weights), and its
    correlation with X, exact from the fine pieces' covariances, is 1 − O(h⁴)."""
    m, gamma, n = 32, 0.5, 2**18
    h = gamma / m
    dW, I = _fine(m, gamma, n, seed=1)
    W, I_c, E = (np.asarray(a) for a in strong.assemble(dW, I, h))
    var_e = float(strong.ei_variance(gamma, m))
    assert _within(np.mean(E * E), var_e, np.std(E * E) / np.sqrt(n))
    for other, exact in [(W, np.expm1(gamma)), (I_c, (gamma - 1) * np.exp(gamma) + 1)]:
        prod = E * other
        assert _within(prod.mean(), exact, prod.std() / np.sqrt(n) + 1e-3 * exact)
    j = np.arange(m)
    w2 = np.exp(2 * (gamma - j * h))
    cov_ex = np.sum(w2 * ((1 - h) * -np.expm1(-h) + (h + np.expm1(-h))))
    corr = cov_ex / np.sqrt(var_e * np.expm1(2 * gamma) / 2)
    assert 1 - corr < 1e-6, corr


STEPS = np.array([16, 32, 64, 128])
N_PATHS = 1024


def _cfg(sampler, steps):
    """A 2-d Gaussian with a power-law spectrum and a mean, T = 5, uniform grid."""
    return _composed(
        "target=gaussian",
        "target.d=2",
        "target.spectrum=power_law",
        "target.mean_norm=1.0",
        "T=5",
        "delta=1e-3",
        "schedule=uniform",
        f"sampler={sampler}",
        f"steps={steps}",
        f"n_samples={N_PATHS}",
        "metrics=[strong]",
    )


def _padded(grid: Grid, length: int) -> Grid:
    """Zero steps at s = T in front (skipped by `strong.paths`): one compiled scan for every N."""
    pad = length - len(grid.s)
    return Grid(*(np.concatenate([np.full(pad, a[0]), a]) for a in grid))


@pytest.fixture(scope="module")
def strong_errors():
    """{sampler: [(value, stderr, floor) for N in STEPS]}, by `strong.paths` on padded grids."""
    out = {}
    for name in strong.SAMPLERS_STRONG:
        cfg = _cfg(name, int(STEPS[0]))
        config.validate(cfg)
        run = config.build(cfg)
        paths = jax.jit(partial(strong.paths, run.sampler, run.score))
        y0 = jax.random.normal(jax.random.PRNGKey(0), (N_PATHS, run.target.d))
        out[name] = []
        for n in STEPS:
            grid = _padded(config.build_grid(_cfg(name, int(n)), run.process), STEPS.max() + 1)
            steps = jax.tree.map(jnp.asarray, grid.steps())
            y, ref, half = paths(steps, y0, jax.random.PRNGKey(int(n)))
            out[name].append((*strong.rms(y, ref), strong.rms(half, ref)[0]))
    return out


def test_strong_orders_on_a_gaussian(strong_errors):
    """Slopes in h = T/N over N = 16 … 128 against the samplers' declared strong orders: em 1,
    ei 1 (the linear part is exact, the frozen score's Brownian fluctuation, √2 P ΔW over the
    step, leaves O(h^{3/2}) local and O(h) global errors), sra1 at least 1.3 (1.5; the drift is
    linear here, so h² shows)."""
    fits = {}
    for name, values in strong_errors.items():
        v, se, floor = np.array(values).T
        fits[name] = fit_loglog(1.0 / STEPS, v, floor=floor, stderr=se)
    print({name: round(f.slope, 3) for name, f in fits.items()})
    for name, fit in fits.items():
        assert fit.n_points == len(STEPS), (name, fit)
    for name in ("em", "ei"):
        assert abs(fits[name].slope - SAMPLERS[name].strong_order) <= 0.25, (name, fits[name])
    assert fits["sra1"].slope >= SAMPLERS["sra1"].strong_order - 0.2, fits["sra1"]


def test_reference_is_converged(strong_errors):
    """Its floor (the reference at M against M/2) is below a tenth of every sampler's error at
    every N, so every point carries rate information."""
    for name, values in strong_errors.items():
        for n, (value, _, floor) in zip(STEPS, values, strict=True):
            assert 0 < floor < 0.1 * value, (name, n, value, floor)


def test_registered_estimator_at_n_128():
    """Through config and ESTIMATORS: em at N = 128 with the run's own key and init; its floor
    is far below its error."""
    cfg = _cfg("em", 128)
    config.validate(cfg)
    run = config.build(cfg)
    assert metrics.select("strong", run.settings, run.grid) == "strong"
    got = metrics.ESTIMATORS["strong"].measure(run, ["strong"], None)["strong"]
    print(got)
    assert got.status == "ok" and 0 < got.stderr < 0.05 * got.value
    assert got.floor < 1e-2 * got.value, got


@pytest.mark.parametrize("sampler", ["ddpm", "ddpm_posterior", "ddim", "pf_euler", "pf_heun"])
def test_other_samplers_are_refused_naming_the_field(sampler):
    cfg = _composed(f"sampler={sampler}", "metrics=[strong]", "estimator.strong=strong")
    with pytest.raises(ConfigError, match=r"^estimator\.strong: strong is not valid"):
        config.validate(cfg)
    cfg = _composed(f"sampler={sampler}", "metrics=[strong]")
    with pytest.raises(ConfigError, match=r"^metrics: no estimator gives 'strong'"):
        config.validate(cfg)
