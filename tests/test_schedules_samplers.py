"""Processes' clocks, every schedule's grid, every sampler's order and the schedule configs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from diffusion_rates import config
from diffusion_rates.app import CONFIG_DIR
from diffusion_rates.metrics import exact
from diffusion_rates.process import PROCESSES, ou
from diffusion_rates.rates import fit_loglog
from diffusion_rates.samplers import SAMPLERS, sample
from diffusion_rates.schedules import SCHEDULES, Grid, Step, lcw, make_grid
from diffusion_rates.targets.gaussian import Gaussian, gaussian
from diffusion_rates.validation import ConfigError

VP = ["vp_linear", "vp_cosine"]


@pytest.mark.parametrize("name", VP)
def test_beta_is_the_derivative_of_the_clock(name):
    process = PROCESSES[name]()
    t = jnp.linspace(0.0, process.t_max, 101)
    grad = jax.vmap(jax.grad(process.clock))(t)
    assert np.allclose(grad, process.beta(t), rtol=1e-12, atol=0)


@pytest.mark.parametrize("name", VP)
def test_clock_round_trips_keep_relative_accuracy(name):
    """Down to s = 1e-30 (the end of an `lcw` grid): a plain arccos inverse loses every digit."""
    process = PROCESSES[name]()
    s = np.geomspace(1e-30, process.s_max, 200)
    assert np.allclose(process.clock(process.inverse_clock(s)), s, rtol=1e-13, atol=0)
    t = np.geomspace(1e-30, process.t_max, 200)
    assert np.allclose(process.inverse_clock(process.clock(t)), t, rtol=1e-13, atol=0)


@pytest.mark.parametrize("name", VP)
def test_default_horizon_is_the_whole_time_axis(name):
    """configs/process/<name>.yaml's default_T is B(t_max)."""
    cfg = OmegaConf.load(f"{CONFIG_DIR}/process/{name}.yaml")
    assert np.isclose(cfg.default_T, PROCESSES[name]().s_max, rtol=1e-14)


C0, C1 = 2.0, 10.0  # configs/schedule/lcw.yaml


@pytest.mark.parametrize("n", [2**k for k in range(3, 14)])
def test_lcw_grid_is_eq_14(n):
    """1 - α_t ≤ c1 log N / N for t ≥ 2 and no step of zero length. α_t itself rounds to 1 in
    float64 once 1 - α_t < 1e-16 (hundreds of steps at N ≥ 1024), so 1 - α_t = -expm1(-2γ_t)
    is read from the s-grid, which keeps those digits. Below N = 36, h = c1 log N / N ≥ 1 and
    the recursion leaves (0, 1): the schedule refuses such N."""
    h = C1 * np.log(n) / n
    if h >= 1:
        with pytest.raises(ValueError, match="^steps: schedule=lcw"):
            lcw(n, C0, C1)
        return
    s = lcw(n, C0, C1)[::-1]  # LCW's index t = 0 … N
    gamma = s[1:] - s[:-1]  # γ_t = s_t - s_{t-1}, t = 1 … N
    one_minus_alpha = -np.expm1(-2.0 * gamma)
    assert np.all(one_minus_alpha > 0)
    assert np.all(one_minus_alpha[1:] <= h)
    assert s[0] == 0 and np.isclose(s[-1], 0.5 * C0 * np.log(n), rtol=1e-14)
    # The recursion itself: ᾱ_{t-1}/ᾱ_t - 1 = h (1 - ᾱ_t), i.e. expm1(2γ_t) = h σ²_t, t ≥ 2.
    var = -np.expm1(-2.0 * s)
    assert np.allclose(np.expm1(2.0 * gamma[1:]), h * var[2:], rtol=1e-9, atol=0)


HORIZONS = {"ou": [1.0, 5.0, 10.0], **{name: [1.0, PROCESSES[name]().s_max] for name in VP}}


@pytest.mark.parametrize("schedule", list(SCHEDULES))
@pytest.mark.parametrize("name", ["ou", *VP])
def test_grids_decrease_strictly_from_T_to_delta(name, schedule):
    """In both clocks; the ends are T and δ, or the schedule's own (lcw, ddpm_linear: δ = 0)."""
    process = PROCESSES[name]()
    own = SCHEDULES[schedule].own_horizon
    for T in HORIZONS[name]:
        for delta in (0.0, 1e-3, 0.1):
            for n in (8, 64, 1000):
                if schedule == "lcw" and n < 36:  # c1 log N / N ≥ 1: refused, tested above
                    continue
                if delta == 0 and schedule in ("bbdd", "logsnr"):  # log δ in the formula
                    with pytest.raises(ValueError, match="^delta:"):
                        make_grid(process, schedule, T, delta, n)
                    continue
                grid = make_grid(process, schedule, T, delta, n)
                case = (T, delta, n)
                assert grid.s.shape == (n + 1,) and np.all(np.isfinite(grid.beta)), case
                assert np.all(np.diff(grid.s) < 0) and np.all(np.diff(grid.t) < 0), case
                if own:
                    assert grid.s[-1] == 0 and grid.t[-1] == 0, case
                else:
                    assert grid.s[0] == T and grid.s[-1] == delta, case


def test_ddpm_linear_grid_is_ho_et_al():
    """s = -½ log ᾱ with ᾱ = Π(1 - β), β = linspace(1e-4, 0.02, 1000); every tenth index."""
    alpha_bar = np.cumprod(1.0 - np.linspace(1e-4, 0.02, 1000))
    s = make_grid(ou(), "ddpm_linear", 0.0, 0.0, 100).s
    assert np.allclose(s[:-1], -0.5 * np.log(alpha_bar[::-10]), rtol=1e-12)


def test_karras_and_logsnr_are_uniform_in_their_variables():
    s_k = make_grid(ou(), "karras", 5.0, 1e-3, 20).s
    root = np.expm1(2.0 * s_k) ** (1 / 14)  # (σ/a)^{1/ρ}, ρ = 7
    assert np.allclose(np.diff(root), np.diff(root)[0], rtol=1e-9)
    lam = -np.log(np.expm1(2.0 * make_grid(ou(), "logsnr", 5.0, 1e-3, 20).s))
    assert np.allclose(np.diff(lam), np.diff(lam)[0], rtol=1e-9)
    t = make_grid(PROCESSES["vp_linear"](), "quadratic", 5.025, 1e-3, 20).t
    assert np.allclose(np.diff(np.sqrt(t)), np.diff(np.sqrt(t))[0], rtol=1e-9)


def test_every_step_is_the_identity_for_a_zero_step():
    """γ = 0 changes nothing (the weak-order test pads grids with such steps)."""
    target = gaussian(4, "power_law", mean_norm=1.0)
    y = jax.random.normal(jax.random.PRNGKey(0), (3, 4))
    s = jnp.asarray(2.0)
    st = Step(s=s, s_next=s, gamma=s * 0, euler_gamma=s * 0)
    for sampler in SAMPLERS.values():
        noise = jax.random.normal(jax.random.PRNGKey(1), (sampler.n_noise, 3, 4))
        assert np.array_equal(sampler.step(y, target.score, st, noise), y), sampler.name


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_every_sampler_runs_with_every_schedule(name):
    """Finite output, also with a point-mass direction (λ = 0) and no early stopping, where the
    score at s = 0 is singular: only pf_heun evaluates it and falls back to Euler there."""
    target = Gaussian(jnp.array([1.0, -0.5, 0.0, 0.3]), jnp.array([2.0, 1.0, 0.5, 0.0]))
    y0 = target.sample(jax.random.PRNGKey(0), 32, 5.0)
    run = jax.jit(
        lambda grid: sample(SAMPLERS[name], target.score, grid, y0, jax.random.PRNGKey(1))
    )
    for schedule in SCHEDULES:
        delta = 1e-3 if schedule in ("bbdd", "logsnr") else 0.0
        grid = make_grid(ou(), schedule, 5.0, delta, 64)
        assert np.all(np.isfinite(run(grid))), schedule


# Weak order: W2 between q_δ and the exact output law (init = q_T, so only the discretisation
# error is left) on a smooth Gaussian, fitted against the step size over N = 125 … 1000.
# The range: every N divides 1000, so ddpm_linear (at most 1000 steps) takes exactly evenly
# spaced indices, and N ≥ 125 keeps lcw's steps (1 - α_t ≤ 0.39 at N = 125) moderate.
# δ = 0.05 (T = 5): a uniform grid is asymptotic only once its step T/N is well below δ, because
# ddim's and ddpm_posterior's coefficients depend on σ_{s'}/σ_s, so their local error grows with
# γ/s near s = δ. At δ = 1e-3 these N give 0.74 (ddpm_posterior) and 0.92 (ddim) on `uniform`;
# at δ = 0 they give 0.71 and 0.83, and still 0.80 and 0.89 over N = 1024 … 16384: the steps
# with γ/s = O(1) next to s = 0 add a slowly decaying (log N-like) factor. All other pairs fit
# within 0.05 of their order at δ = 1e-3, and at δ = 0 where the schedule allows it.
ORDER_STEPS = np.array([125, 250, 500, 1000])
ORDER_TARGET = gaussian(10, "power_law", power=1.0, mean_norm=1.0)


def _step_size(schedule, n):
    """The grid's step up to a constant: 1/N, but c1 log N / N for lcw, whose 1 - α_t is that
    (LCW Eq. 14). Against 1/N the log N factor lowers the fitted exponent by about p/log N
    (1.65 instead of 2 for the second-order samplers here)."""
    return np.log(n) / n if schedule == "lcw" else 1.0 / n


def _padded(grid: Grid, length: int) -> Grid:
    """The grid with zero steps at s = T in front, to `length` points: one compiled scan serves
    every N (every step rule is the identity at γ = 0, tested above)."""
    pad = length - len(grid.s)
    return Grid(*(np.concatenate([np.full(pad, a[0]), a]) for a in grid))


def measured_orders(sampler, process="ou", T=5.0, delta=0.05, steps=ORDER_STEPS):
    """{schedule: (fit against the step size, fit against 1/N)} for one sampler."""
    target = ORDER_TARGET
    grids = {
        (sch, n): make_grid(PROCESSES[process](), sch, T, delta, n)
        for sch in SCHEDULES
        for n in steps
    }
    stacked = jax.tree.map(
        lambda *a: jnp.stack(a), *(_padded(g, steps.max() + 1) for g in grids.values())
    )

    @jax.jit
    @jax.vmap
    def w2(grid):
        m, v = exact.output_moments(sampler, target, grid, init="target")
        end = grid.s[-1]
        return exact.w2_gaussian(m, v, target.eigen_mean(end), target.eigen_variances(end))

    values = dict(zip(grids, np.asarray(w2(stacked)), strict=True))
    # exact_gaussian's W2 floor, the float64 rounding after N steps: points near it are dropped.
    scale = float(jnp.sqrt(jnp.sum(target.eigen_variances(delta) + target.eigen_mean(delta) ** 2)))
    floor = scale * steps * np.finfo(np.float64).eps
    out = {}
    for sch in SCHEDULES:
        err = np.array([values[sch, n] for n in steps])
        out[sch] = tuple(
            fit_loglog(x, err, floor=floor) for x in (_step_size(sch, steps), 1.0 / steps)
        )
    return out


def _assert_weak_order(sampler, **where):
    for schedule, (fit, _) in measured_orders(sampler, **where).items():
        assert fit.n_points == len(ORDER_STEPS), (schedule, fit)
        assert abs(fit.slope - sampler.weak_order) <= 0.3, (schedule, fit)


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_weak_order_on_a_gaussian(name):
    _assert_weak_order(SAMPLERS[name])


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SAMPLERS))
@pytest.mark.parametrize("process", VP)
def test_weak_order_on_vp_clocks(process, name):
    """The same on the VP clocks, T = B(t_max): Euler–Maruyama steps by (t_k - t_{k+1})·β(t_k)
    there, yet stays first order; the other samplers see only the OU grid."""
    _assert_weak_order(SAMPLERS[name], process=process, T=PROCESSES[process]().s_max)


@pytest.mark.parametrize("name", ["pf_euler", "pf_heun", "sra1"])
def test_new_samplers_match_their_exact_moments_by_monte_carlo(name):
    """Mean and variance of 2^16 runs of `samplers.sample` (ambient coordinates of a rotated
    target, full score) within 4 standard errors of output_moments (eigenbasis, diagonal score).
    Few, large steps, so that the output law is far from q_δ and a wrong step would show."""
    target = gaussian(5, "power_law", power=1.0, mean_norm=2.0, rotate=True, seed=3)
    sampler = SAMPLERS[name]
    for schedule in ("uniform", "karras"):
        grid = make_grid(ou(), schedule, 3.0, 1e-2, 6)
        m, v = exact.output_moments(sampler, target, grid, init="target")
        n = 2**16
        y0 = target.sample(jax.random.PRNGKey(1), n, grid.s[0])
        y = target.to_eigen(sample(sampler, target.score, grid, y0, jax.random.PRNGKey(2)))
        mc_mean, mc_var = y.mean(0), y.var(0, ddof=1)
        assert np.all(np.abs(mc_mean - m) < 4 * np.sqrt(v / n)), schedule
        assert np.all(np.abs(mc_var - v) < 4 * v * np.sqrt(2 / (n - 1))), schedule


def _composed(*overrides):
    with initialize_config_dir(CONFIG_DIR, version_base=None):
        return compose("config", overrides=list(overrides))


def test_lcw_config_sets_no_early_stopping_and_its_own_horizon():
    cfg = _composed("schedule=lcw", "steps=64", "sampler=sra1")
    config.validate(cfg)
    assert cfg.delta == 0 and cfg.schedule.c0 == 2.0 and cfg.schedule.c1 == 10.0
    grid = config.build(cfg).grid
    assert grid.s[-1] == 0 and np.isclose(grid.s[0], np.log(64), rtol=1e-14)


BAD = [
    (["schedule=lcw", "schedule.c1=8"], "schedule.c1"),
    (["schedule=lcw", "schedule.c0=3"], "schedule.c1"),
    (["schedule=lcw", "delta=0.001"], "delta"),
    (["schedule=lcw", "T=5"], "T"),
    (["schedule=lcw", "steps=16"], "steps"),
    (["schedule=ddpm_linear", "steps=1001"], "steps"),
    (["schedule=ddpm_linear", "delta=0.01"], "delta"),
    (["schedule=logsnr", "delta=0"], "delta"),
    (["schedule=karras", "schedule.rho=0"], "schedule.rho"),
]


@pytest.mark.parametrize("overrides,key", BAD)
def test_bad_schedule_configs_fail_in_one_line_naming_the_key(overrides, key):
    with pytest.raises(ConfigError) as err:
        config.validate(_composed(*overrides))
    assert str(err.value).startswith(f"{key}: ") and "\n" not in str(err.value)
