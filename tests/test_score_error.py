"""Score-error models: the measured ε² is the requested one, and exact laws see the same ŝ."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffusion_rates import score_error
from diffusion_rates.metrics import exact
from diffusion_rates.process import alpha, ou
from diffusion_rates.samplers import SAMPLERS, sample
from diffusion_rates.schedules import make_grid
from diffusion_rates.targets.gaussian import gaussian

S = [1e-4, 1e-2, 0.3, 3.0]


def mean_sq_error(target, model, s, n=4000, seed=0):
    x = target.sample(jax.random.PRNGKey(seed), n, s)
    err = jnp.sum((model.apply(target.score)(x, s) - target.score(x, s)) ** 2, axis=-1)
    return float(err.mean()), float(err.std() / np.sqrt(n))


@pytest.mark.parametrize("name", ["bias", "noise"])
def test_measured_eps_is_the_requested_one_at_every_s(name):
    target = gaussian(20, "power_law", mean_norm=1.0, rotate=True)
    eps = 0.3
    model = score_error.build(name, eps, target.d, seed=1)
    for s in S:
        value, _ = mean_sq_error(target, model, s)
        assert abs(value / eps**2 - 1) < 0.05, (s, value)


def test_bias_field_is_smooth_and_not_constant():
    model = score_error.build("bias", 1.0, 5, seed=2)
    field = lambda y: model.apply(lambda y, s: jnp.zeros_like(y))(y, 0.1)  # noqa: E731
    y = jax.random.normal(jax.random.PRNGKey(0), (200, 5))
    values = field(y)
    assert np.allclose(jnp.linalg.norm(values, axis=-1), 1.0)
    assert float(jnp.std(values[:, 0])) > 1e-3  # it varies with x
    jac = jax.jacfwd(lambda v: field(v[None])[0])(y[0])
    assert np.all(np.isfinite(jac)) and float(jnp.max(jnp.abs(jac))) < 10.0


def test_misspecified_error_matches_its_formula():
    """A shift Δ of a Gaussian target: ŝ − s = a_s Σ_s⁻¹ Δ, the same at every x."""
    target = gaussian(6, "power_law", mean_norm=1.0, rotate=True, seed=4)
    model = score_error.build("misspecified", 0.5, target.d, seed=3)
    shift = target.to_eigen(model.params["shift"])
    for s in S:
        expected = float(jnp.sum((alpha(s) * shift / target.eigen_variances(s)) ** 2))
        value, _ = mean_sq_error(target, model, s, n=50)
        assert np.isclose(value, expected, rtol=1e-8)


def test_measured_combines_steps_as_the_papers_do():
    target = gaussian(4, "flat")
    model = score_error.build("bias", 0.2, target.d, seed=0)
    grid = make_grid(ou(), "bbdd", 5.0, 1e-3, 16)
    out = score_error.measured(target, model, grid.s, 64, jax.random.PRNGKey(0))
    assert np.isclose(out["eps_score_sq_mean"][0], 0.04, rtol=1e-9)  # ‖error‖ = ε exactly
    assert np.isclose(out["eps_score_sq_weighted"][0], 0.04 * (5.0 - 1e-3), rtol=1e-9)


def test_exact_law_with_a_misspecified_score_matches_monte_carlo():
    """exact_gaussian applies the shift in eigen-coordinates; Monte Carlo in ambient ones."""
    target = gaussian(4, "power_law", mean_norm=1.0, rotate=True, seed=5)
    model = score_error.build("misspecified", 0.8, target.d, seed=6)
    grid = make_grid(ou(), "uniform", 5.0, 1e-2, 10)
    sampler = SAMPLERS["ei"]
    m, v = exact.output_moments(
        sampler, target, grid, "standard", model.apply(target.eigen_score, target.to_eigen)
    )
    n = 40_000
    y0 = jax.random.normal(jax.random.PRNGKey(1), (n, target.d))
    y = target.to_eigen(sample(sampler, model.apply(target.score), grid, y0, jax.random.PRNGKey(2)))
    assert np.all(np.abs(y.mean(0) - m) < 4 * np.sqrt(v / n))
    assert np.all(np.abs(y.var(0, ddof=1) - v) < 4 * v * np.sqrt(2 / (n - 1)))
    m0, _ = exact.output_moments(sampler, target, grid)
    assert float(jnp.max(jnp.abs(m - m0))) > 0.1  # the shift is visible in the output
