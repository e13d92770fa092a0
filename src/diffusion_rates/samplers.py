"""Reverse-time samplers: small step rules and one `lax.scan` driver.

A reverse step goes from forward time s to s' = s - γ (OU clock). The one-step rules all read
y' = A·y + B·ŝ(y, s) + C·z, z ~ N(0, I), with scalars (A, B, C) given by one table row each
(DESIGN.md section 2). Every sampler declares its nominal weak and strong orders.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import jax
import jax.numpy as jnp

from diffusion_rates.process import sigma2
from diffusion_rates.schedules import Grid, Step

Score = Callable[[jax.Array, jax.Array], jax.Array]  # (y, s) -> ∇ log q_s(y)


@dataclass(frozen=True)
class Sampler:
    """`step(y, score, step, noise) -> y'` with `noise` of shape (n_noise, *y.shape)."""

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


SAMPLERS = {
    s.name: s
    for s in (
        one_step("em", _em),
        one_step("ei", _ei),
        one_step("ddpm", _ddpm),
        one_step("ddpm_posterior", _ddpm_posterior),
        one_step("ddim", _ddim),
    )
}


def sample(sampler: Sampler, score: Score, grid: Grid, y0: jax.Array, key: jax.Array):
    """Run the reverse chain from y0 (at forward time s_0 = T) down the grid.

    The noise of step k is drawn from `fold_in(key, k)`: explicit, reproducible, and the same
    for every batch layout of y0."""
    steps = jax.tree.map(jnp.asarray, grid.steps())

    def body(y, xs):
        st, k = xs
        noise = jax.random.normal(jax.random.fold_in(key, k), (sampler.n_noise, *y.shape), y.dtype)
        return sampler.step(y, score, st, noise), None

    y, _ = jax.lax.scan(body, y0, (steps, jnp.arange(grid.n_steps)))
    return y
