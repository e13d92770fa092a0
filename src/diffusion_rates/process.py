"""Variance-preserving forward processes.

dX = -β(t) X dt + √(2β(t)) dB, so X_t = a X_0 + σ Z with a = e^{-B(t)}, B(t) = ∫_0^t β and
σ² = 1 - a². Every such process is the OU process (β ≡ 1) run on the clock s = B(t), so all the
mathematics downstream is written in the OU clock s; a process only converts its own clock t to s
and back, and gives β(t) for the Euler–Maruyama step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import jax.numpy as jnp


def alpha(s):
    """a_s = e^{-s}: the signal factor at OU time s."""
    return jnp.exp(-s)


def sigma2(s):
    """σ_s² = 1 - e^{-2s}, computed without the cancellation of 1 - a² near s = 0."""
    return -jnp.expm1(-2.0 * s)


@dataclass(frozen=True)
class Process:
    """A VP process given by its clock B(t) = ∫_0^t β, its inverse and β itself.

    `t_max` is the end of the process's own time axis (∞ for OU, 1 for the VP processes).
    """

    name: str
    clock: callable  # t -> s = B(t)
    inverse_clock: callable  # s -> t
    beta: callable  # t -> β(t)
    t_max: float

    @property
    def s_max(self) -> float:
        # math, not jnp: validating a command line must not start a JAX backend
        return float(self.clock(self.t_max)) if math.isfinite(self.t_max) else float("inf")


def ou() -> Process:
    """β ≡ 1: the OU process of BBDD, LCW and PAD."""
    return Process("ou", lambda t: t, lambda s: s, lambda t: jnp.ones_like(t), float("inf"))


def vp_linear(beta_min: float = 0.05, beta_max: float = 10.0) -> Process:
    """β(t) = β_min + (β_max - β_min) t on [0, 1]: score_sde's VP SDE (β 0.1 → 20) with its
    factor 1/2 moved into β, since our SDE is dX = -βX dt + √(2β) dB (Song et al. 2021)."""
    slope = beta_max - beta_min

    def inverse(s):
        # B(t) = β_min t + slope t²/2 = s, solved in the form that does not cancel as slope → 0.
        return 2.0 * s / (beta_min + jnp.sqrt(beta_min**2 + 2.0 * slope * s))

    return Process(
        "vp_linear",
        lambda t: beta_min * t + 0.5 * slope * t**2,
        inverse,
        lambda t: beta_min + slope * t,
        1.0,
    )


def vp_cosine(offset: float = 0.008, t_end: float = 0.9946) -> Process:
    """Cosine schedule (Nichol & Dhariwal 2021): a(t) = cos(φ(t)) / cos(φ(0)),
    φ(t) = (t + offset)/(1 + offset)·π/2; so B(t) = log cos φ(0) - log cos φ(t).

    Both directions are written in Δ = φ(t) - φ(0) and τ = tan φ(0), because the plain forms lose
    all digits near t = 0 (arccos is ill-conditioned next to 1, and log cos φ(0) - log cos φ(t)
    cancels): with cos φ/cos φ(0) = cos Δ - τ sin Δ,
        B = -log1p(-(2 sin²(Δ/2) + τ sin Δ)),
        Δ = 2 arctan((1 - e^{-s}) / (τ + √(τ² + 1 - e^{-2s})))   (tan(Δ/2) solves a quadratic).
    `t_end` < 1 keeps B finite (their clipping of β at 0.999 plays the same role)."""
    rate = 0.5 * jnp.pi / (1.0 + offset)  # dφ/dt
    tau = jnp.tan(offset * rate)

    def clock(t):
        delta = t * rate
        return -jnp.log1p(-(2.0 * jnp.sin(0.5 * delta) ** 2 + tau * jnp.sin(delta)))

    def inverse(s):
        half = -jnp.expm1(-s) / (tau + jnp.sqrt(tau**2 - jnp.expm1(-2.0 * s)))
        return 2.0 * jnp.arctan(half) / rate

    return Process(
        "vp_cosine",
        clock,
        inverse,
        lambda t: jnp.tan(offset * rate + t * rate) * rate,
        t_end,
    )


PROCESSES = {"ou": ou, "vp_linear": vp_linear, "vp_cosine": vp_cosine}
