"""Reverse-time samplers: small step rules and one `lax.scan` driver.

A reverse step goes from forward time s to s' = s - γ (OU clock). The one-step rules all read
y' = A·y + B·ŝ(y, s) + C·z, z ~ N(0, I), with scalars (A, B, C) given by one table row each
(docs/mathematics.md). The multi-stage rules (probability-flow Euler and Heun, Rößler's SRA1) are
one small function each. Every sampler declares its nominal weak and strong orders.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import jax
import jax.numpy as jnp

from diffusion_rates import noise
from diffusion_rates.process import sigma2
from diffusion_rates.schedules import Grid, Step

Score = Callable[[jax.Array, jax.Array], jax.Array]  # (y, s) -> ∇ log q_s(y)


@dataclass(frozen=True)
class Sampler:
    """`step(y, score, step, noise) -> y'` with `noise` of shape (n_noise, *y.shape), standard
    normals (n_noise = 0 for the deterministic rules)."""

    name: str
    step: Callable
    n_noise: int
    weak_order: float
    strong_order: float
    coefficients: Callable | None = None  # Step -> (A, B, C) for one-step rules


def one_step(name: str, coefficients: Callable, weak_order=1.0, strong_order=1.0) -> Sampler:
    """A sampler of the form y' = A·y + B·ŝ(y, s) + C·z."""

    def step(y, score, st: Step, noise):
        A, B, C = coefficients(st)
        return A * y + B * score(y, st.s) + C * noise[0]

    return Sampler(name, step, 1, weak_order, strong_order, coefficients)


def _em(st):
    """Euler–Maruyama on dY = (Y + 2ŝ) dt + √2 dW in the process's clock (step h·β(t_k))."""
    g = st.euler_gamma
    return 1.0 + g, 2.0 * g, jnp.sqrt(2.0 * g)


def _ei(st):
    """Exponential integrator, score frozen over the step (BBDD Eq. 4)."""
    g = st.gamma
    return jnp.exp(g), 2.0 * jnp.expm1(g), jnp.sqrt(jnp.expm1(2.0 * g))


def _ddpm(st):
    """DDPM ancestral step with the β variance (LCW Eq. 9; Ho et al. 2020), α = e^{-2γ}."""
    g = st.gamma
    return jnp.exp(g), 2.0 * jnp.sinh(g), jnp.sqrt(-jnp.expm1(-2.0 * g))


def _ddpm_posterior(st):
    """DDPM with the posterior variance β̃ = β σ_{s'}²/σ_s² (PAD Eq. 4): exact on point masses."""
    A, B, C = _ddpm(st)
    return A, B, C * jnp.sqrt(sigma2(st.s_next) / sigma2(st.s))


def _ddim(st):
    """Deterministic DDIM (η = 0; Song, Meng, Ermon 2021) in the OU clock."""
    g = st.gamma
    v, v_next = sigma2(st.s), sigma2(st.s_next)
    return jnp.exp(g), jnp.exp(g) * v - jnp.sqrt(v_next * v), jnp.zeros_like(g)


def _flow(score, y, s):
    """Velocity of the probability-flow ODE dy/dt = y + ŝ(y, T - t), at forward time s = T - t."""
    return y + score(y, s)


def _pf_euler(y, score, st: Step, noise):
    """Euler on the probability-flow ODE in the OU clock: y' = y + γ (y + ŝ(y, s))."""
    return y + st.gamma * _flow(score, y, st.s)


def _pf_heun(y, score, st: Step, noise):
    """Heun (explicit trapezoid) on the probability-flow ODE: k1 = v(y, s),
    ŷ = y + γ k1, y' = y + γ (k1 + v(ŷ, s'))/2. A step that ends at s' = 0 stays Euler, as in
    Karras et al. 2022 (Alg. 1): the score at s' = 0 is singular on point-mass directions."""
    k1 = _flow(score, y, st.s)
    euler = y + st.gamma * k1
    heun = y + 0.5 * st.gamma * (k1 + _flow(score, euler, st.s_next))
    return jnp.where(st.s_next > 0, heun, euler)


def _sra1(y, score, st: Step, noise):
    """Rößler's SRA1 (SIAM J. Numer. Anal. 48(3), 2010) for additive noise, on the reverse SDE
    dy = f dt + g dW, f(t, y) = y + 2ŝ(y, T - t), g = √2, with h = γ:
    ΔW, ΔZ ~ N(0, h) independent, χ = (ΔW + ΔZ/√3)/2 (= I_(1,0)/h, the time-integrated
    increment), k1 = h f(t, y), k2 = h f(t + 3h/4, y + 3k1/4 + 1.5 g χ),
    y' = y + k1/3 + 2k2/3 + g ΔW. Strong order 1.5 for additive noise, weak order 2; with a
    linear drift (Gaussian data) the strong error falls like h² too. (diffrax's SRA1 tableau is
    the same, written with the space-time Lévy area H = χ - ΔW/2.)"""
    h, g = st.gamma, jnp.sqrt(2.0)
    dW, dZ = jnp.sqrt(h) * noise[0], jnp.sqrt(h) * noise[1]
    chi = 0.5 * (dW + dZ / jnp.sqrt(3.0))

    def f(y, s):
        return y + 2.0 * score(y, s)

    k1 = h * f(y, st.s)
    k2 = h * f(y + 0.75 * k1 + 1.5 * g * chi, st.s - 0.75 * h)  # t + 3h/4 is s - 3h/4 forward
    return y + k1 / 3.0 + 2.0 * k2 / 3.0 + g * dW


SAMPLERS = {
    s.name: s
    for s in (
        one_step("em", _em),
        one_step("ei", _ei),
        one_step("ddpm", _ddpm),
        one_step("ddpm_posterior", _ddpm_posterior),
        one_step("ddim", _ddim),
        Sampler("pf_euler", _pf_euler, n_noise=0, weak_order=1.0, strong_order=1.0),
        # Deterministic, so its strong order is its weak order.
        Sampler("pf_heun", _pf_heun, n_noise=0, weak_order=2.0, strong_order=2.0),
        Sampler("sra1", _sra1, n_noise=2, weak_order=2.0, strong_order=1.5),
    )
}


def grid_steps(grid: Grid, dtype) -> Step:
    """The grid's steps as arrays of the chain's dtype (a float64 step would promote a float32
    chain, and a scan's carry may not change type)."""
    return jax.tree.map(lambda a: jnp.asarray(a, dtype), grid.steps())


def sample(
    sampler: Sampler,
    score: Score,
    grid: Grid,
    y0: jax.Array,
    key: jax.Array,
    first: int = 0,
    normal: Callable = noise.normal,
):
    """Run the reverse chain from y0 (at forward time s_0 = T) down the grid, in y0's dtype.

    The noise of step k is `normal(fold_in(key, k), (n, n_noise, d), dtype, first)`; with the
    default `noise.normal`, row i is a function of the key and the particle's index `first + i`
    only: explicit, reproducible, and the same for every batch layout of y0 (a batch starting at
    particle `first` draws that particle's noise). The benchmark passes JAX's threefry normals
    here to compare."""
    steps = grid_steps(grid, y0.dtype)

    def body(y, xs):
        st, k = xs
        shape = (y.shape[0], sampler.n_noise, *y.shape[1:])
        z = normal(jax.random.fold_in(key, k), shape, y.dtype, first)
        return sampler.step(y, score, st, jnp.moveaxis(z, 1, 0)), None

    y, _ = jax.lax.scan(body, y0, (steps, jnp.arange(grid.n_steps)))
    return y
