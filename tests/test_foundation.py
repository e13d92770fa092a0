"""The Gaussian slice end to end: exact laws, samplers, grids, the app and its records."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffusion_rates.metrics import exact
from diffusion_rates.process import alpha, ou, sigma2, vp_linear
from diffusion_rates.rates import fit_loglog
from diffusion_rates.samplers import SAMPLERS, sample
from diffusion_rates.schedules import make_grid
from diffusion_rates.targets.gaussian import Gaussian, gaussian

ONE_STEP = ["em", "ei", "ddpm", "ddpm_posterior", "ddim"]


@pytest.mark.parametrize("schedule", ["uniform", "bbdd"])
@pytest.mark.parametrize("name", ONE_STEP)
def test_exact_moments_match_monte_carlo(name, schedule):
    """Exact moments (eigen-coordinates, diagonal score) against Monte Carlo of the same sampler
    run in the ambient coordinates of a rotated target with its full score."""
    target = gaussian(5, "power_law", power=1.0, mean_norm=2.0, rotate=True, seed=3)
    grid = make_grid(ou(), schedule, 6.0, 1e-2, 12)
    sampler = SAMPLERS[name]
    m, v = exact.output_moments(sampler, target, grid)
    n = 40_000
    y0 = jax.random.normal(jax.random.PRNGKey(1), (n, target.d))
    y = target.to_eigen(sample(sampler, target.score, grid, y0, jax.random.PRNGKey(2)))
    mc_mean, mc_var = y.mean(0), y.var(0, ddof=1)
    assert np.all(np.abs(mc_mean - m) < 4 * np.sqrt(v / n))
    assert np.all(np.abs(mc_var - v) < 4 * v * np.sqrt(2 / (n - 1)))


def test_metrics_of_a_law_to_itself_are_zero():
    m = jnp.array([0.0, 1.5, -2.0, 3.0])
    v = jnp.array([1.0, 0.3, 2.0, 0.0])  # one point-mass coordinate
    for fn in (exact.kl_gaussian, exact.w2_gaussian, exact.hellinger_gaussian):
        assert fn(m, v, m, v) == 0.0


def test_kl_with_a_point_mass_is_infinite():
    """A point mass and a Gaussian are mutually singular: KL is +inf both ways, not an error."""
    m, v = jnp.zeros(2), jnp.array([1.0, 0.0])
    assert exact.kl_gaussian(m, jnp.ones(2), m, v) == jnp.inf
    assert exact.kl_gaussian(m, v, m, jnp.ones(2)) == jnp.inf
    assert exact.kl_gaussian(m, v, m + jnp.array([0.0, 1.0]), v) == jnp.inf


def test_kl_matches_the_plain_formula():
    rng = np.random.default_rng(0)
    m_p, m_q = rng.normal(size=6), rng.normal(size=6)
    v_p, v_q = rng.uniform(0.2, 3, size=6), rng.uniform(0.2, 3, size=6)
    plain = 0.5 * np.sum(v_p / v_q + (m_p - m_q) ** 2 / v_q - 1 + np.log(v_q / v_p))
    assert np.isclose(exact.kl_gaussian(m_p, v_p, m_q, v_q), plain, rtol=1e-12)
    w2 = np.sqrt(np.sum((m_p - m_q) ** 2 + (np.sqrt(v_p) - np.sqrt(v_q)) ** 2))
    assert np.isclose(exact.w2_gaussian(m_p, v_p, m_q, v_q), w2, rtol=1e-12)


@pytest.mark.parametrize("schedule", ["uniform", "bbdd"])
@pytest.mark.parametrize("n", [2, 7, 64, 1000])
def test_ddpm_is_exact_on_standard_normal(schedule, n):
    target = gaussian(50, "flat")
    grid = make_grid(ou(), schedule, 5.0, 1e-3, n)
    kl = exact.exact_gaussian(SAMPLERS["ddpm"], target, grid, ["kl"])["kl"][0]
    assert kl < 1e-12


def test_ddpm_posterior_has_no_discretisation_error_on_a_point_mass():
    """Spectrum 0: q_s = N(a_s μ, σ_s²). The step is the exact conditional, so only the
    initialisation error remains, contracted by Π c_k = e^{-(T-δ)} σ_δ²/σ_T² in both moments."""
    mu, T, delta = jnp.array([0.7, -1.2]), 4.0, 1e-2
    target = Gaussian(mu, jnp.zeros(2))
    contraction = np.exp(-(T - delta)) * sigma2(delta) / sigma2(T)
    v_out = sigma2(delta) + contraction**2 * (1.0 - sigma2(T))
    m_out = alpha(delta) * mu - contraction * alpha(T) * mu
    v_q, m_q = sigma2(delta), alpha(delta) * mu
    expected = 0.5 * np.sum(v_q / v_out - 1 + np.log(v_out / v_q) + (m_out - m_q) ** 2 / v_out)
    for schedule in ("uniform", "bbdd"):
        for n in (3, 17, 300):
            grid = make_grid(ou(), schedule, T, delta, n)
            kl = exact.exact_gaussian(SAMPLERS["ddpm_posterior"], target, grid, ["kl"])["kl"][0]
            assert np.isclose(kl, expected, rtol=1e-9), (schedule, n)


@pytest.mark.parametrize("T,delta,n", [(10.0, 1e-3, 64), (5.0, 1e-5, 200), (2.0, 0.1, 9)])
def test_bbdd_grid_step_bound(T, delta, n):
    """γ_k ≤ κ·min(1, s_{k+1}) everywhere, with equality in the geometric phase (s_{k+1} < 1)."""
    s = make_grid(ou(), "bbdd", T, delta, n).s
    gamma, s_next = s[:-1] - s[1:], s[1:]
    kappa = gamma[-1] / s_next[-1]
    assert s[0] == T and s[-1] == delta and np.all(gamma > 0)
    assert np.all(gamma <= kappa * np.minimum(1.0, s_next) * (1 + 1e-12))
    geometric = s_next < 1.0
    assert 0 < geometric.sum() < n
    assert np.allclose(gamma[~geometric], gamma[0], rtol=1e-12)  # the linear phase is uniform
    assert np.allclose(gamma[geometric], kappa * s_next[geometric], rtol=1e-9)


def test_vp_linear_grid_lives_in_its_own_clock():
    """uniform is uniform in the process clock t; the OU grid is s = B(t)."""
    process = vp_linear()
    grid = make_grid(process, "uniform", float(process.clock(1.0)), 1e-3, 10)
    assert np.allclose(np.diff(grid.t), np.diff(grid.t)[0])
    assert np.allclose(grid.s, process.clock(grid.t), rtol=1e-13)
    assert np.isclose(grid.t[0], 1.0) and np.isclose(grid.s[-1], 1e-3)


def test_ei_kl_is_second_order_on_a_smooth_gaussian():
    """KL ∝ N^{-2}: the marginal error of the exponential integrator is second order in KL
    (first order in W2) on a smooth target, though the bounds are first order in KL."""
    target = gaussian(10, "flat", mean_norm=1.0)
    steps = np.array([128, 256, 512, 1024])
    kls = [
        exact.exact_gaussian(
            SAMPLERS["ei"], target, make_grid(ou(), "uniform", 10.0, 1e-3, n), ["kl"]
        )["kl"][0]
        for n in steps
    ]
    fit = fit_loglog(steps, kls)
    assert -2.2 < fit.slope < -1.8, fit


def test_fit_excludes_points_under_the_floor():
    x = np.array([1.0, 2.0, 4.0, 8.0])
    fit = fit_loglog(x, x**-1.0, floor=np.array([0.0, 0.0, 0.0, 0.1]))
    assert fit.n_points == 3 and fit.excluded[0][0] == 8.0
    assert np.isclose(fit.slope, -1.0)
