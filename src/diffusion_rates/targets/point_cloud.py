"""The empirical measure (1/n) Σ_i δ_{x_i} of n points drawn on a manifold, as a mixture with zero
covariances: q_s = (1/n) Σ_i N(a_s x_i, σ_s² I) is smooth for s > 0 and atomic at s = 0.

Manifolds (intrinsic dimension k), drawn in R^m and placed in R^d by a random isometry:
`sphere` S^k_r ⊂ R^{k+1} (uniform), `torus` (S¹_r)^k ⊂ R^{2k} (uniform), `subspace` N(0, I_k).
`normalise` rescales and shifts the sphere or torus to diameter 1 through the origin, the
normalisation of PAD (Potaptchik, Azangulov & Deligiannidis 2024: diam M ≤ 1, 0 ∈ M).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from diffusion_rates.targets.gmm import GMM
from diffusion_rates.targets.subspace import haar_isometry
from diffusion_rates.validation import ConfigError, boolean, choice, integer, number


def sphere(key, n: int, k: int, radius: float, normalise: bool):
    """Uniform on S^k_r: r g/|g| for standard Gaussian g in R^{k+1}. Normalised: r = 1/2 and
    centre r e_1, so the sphere has diameter 1 and passes through 0."""
    r = 0.5 if normalise else radius
    g = jax.random.normal(key, (n, k + 1))
    points = r * g / jnp.linalg.norm(g, axis=1, keepdims=True)
    return points.at[:, 0].add(r) if normalise else points


def torus(key, n: int, k: int, radius: float, normalise: bool):
    """Uniform on (S¹_r)^k: (r cos θ_i, r sin θ_i)_i with θ_i ~ U(0, 2π). Its diameter is 2r√k;
    normalised: r = 1/(2√k) and each circle centred at (r, 0), so 0 (every θ_i = π) is on it."""
    r = 0.5 / math.sqrt(k) if normalise else radius
    theta = jax.random.uniform(key, (n, k), maxval=2.0 * jnp.pi)
    return r * jnp.stack([jnp.cos(theta) + normalise, jnp.sin(theta)], axis=-1).reshape(n, 2 * k)


def gaussian_subspace(key, n: int, k: int, radius: float, normalise: bool):
    """N(0, I_k): a flat, unbounded manifold, so neither radius nor normalisation applies."""
    return jax.random.normal(key, (n, k))


MANIFOLDS = {"sphere": sphere, "torus": torus, "subspace": gaussian_subspace}
# The dimension m of the space each manifold is drawn in, and m as a formula in k for messages.
AMBIENT = {
    "sphere": (lambda k: k + 1, "k + 1"),
    "torus": (lambda k: 2 * k, "2k"),
    "subspace": (lambda k: k, "k"),
}


def point_cloud(
    key,
    d: int,
    k: int,
    n: int,
    manifold: str = "sphere",
    radius: float = 1.0,
    normalise: bool = False,
) -> GMM:
    """n points on the k-dimensional `manifold`, embedded in R^d by a Haar-random isometry.
    `intrinsic_dim` records k, the manifold's dimension (the measure itself is atomic)."""
    key_points, key_basis = jax.random.split(key)
    points = MANIFOLDS[manifold](key_points, n, k, radius, normalise)
    basis = haar_isometry(key_basis, d, AMBIENT[manifold][0](k))
    if normalise:
        normalisation = "diam<=1,0 on M"
    else:
        normalisation = "N(0,I_k)" if manifold == "subspace" else f"radius={radius:g}"
    return GMM(
        jnp.full(n, 1.0 / n),
        points @ basis.T,
        jnp.zeros(n),
        intrinsic_dim=k,
        normalisation=normalisation,
        name="point_cloud",
    )


def validate_config(c) -> None:
    d = integer("target.d", c.d, 1)
    manifold = choice("target.manifold", c.manifold, tuple(MANIFOLDS))
    k = integer("target.intrinsic_dim", c.intrinsic_dim, 1)
    ambient, formula = AMBIENT[manifold]
    if ambient(k) > d:
        raise ConfigError(
            f"target.intrinsic_dim: {formula} <= target.d = {d} for manifold={manifold} (got {k})"
        )
    integer("target.K", c.K, 1)
    number("target.radius", c.radius, low=0.0, low_open=True)
    boolean("target.normalise", c.normalise)
    if c.normalise and manifold == "subspace":
        raise ConfigError(
            "target.normalise: true needs a bounded manifold, sphere or torus (got subspace)"
        )
    integer("target.seed", c.seed, 0)


def from_config(c) -> GMM:
    return point_cloud(
        jax.random.PRNGKey(c.seed),
        c.d,
        c.intrinsic_dim,
        c.K,
        c.manifold,
        float(c.radius),
        c.normalise,
    )
