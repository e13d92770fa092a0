"""The Gaussian mixtures of Li, Cai & Wei 2025 (arXiv 2504.05300): Σ_k (1/K) N(μ_k, I_d).

Their Assumption 1 bounds the mean norms polynomially in the step count, so the norm ‖μ_k‖ is the
knob here, recorded in `normalisation` for each run to be read against that bound.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from diffusion_rates.targets.gmm import GMM
from diffusion_rates.validation import integer, number


def lcw_gmm(key, d: int, K: int, mean_norm: float) -> GMM:
    """Equal weights, identity covariances, means μ_k = mean_norm · g_k/‖g_k‖ for standard
    Gaussian g_k: in general position, so they span min(K, d) directions."""
    g = jax.random.normal(key, (K, d))
    means = mean_norm * g / jnp.linalg.norm(g, axis=1, keepdims=True)
    return GMM(
        jnp.full(K, 1.0 / K),
        means,
        jnp.ones(K),
        intrinsic_dim=d,
        normalisation=f"mean_norm={mean_norm:g}",
        name="lcw_gmm",
    )


def validate_config(c) -> None:
    integer("target.d", c.d, 1)
    integer("target.K", c.K, 1)
    number("target.mean_norm", c.mean_norm, low=0.0)
    integer("target.seed", c.seed, 0)


def from_config(c) -> GMM:
    return lcw_gmm(jax.random.PRNGKey(c.seed), c.d, c.K, float(c.mean_norm))
