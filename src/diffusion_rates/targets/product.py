"""Product targets π^{⊗k} ⊗ δ₀^{⊗(d−k)} for a 1-D Gaussian mixture π = Σ_j w_j N(m_j, s_j²),
optionally rotated by a Haar-random orthogonal matrix.

Coordinates are independent, so every quantity is the 1-D mixture's, coordinate by coordinate
(q_s^π = Σ_j w_j N(a_s m_j, a_s² s_j² + σ_s²)); the δ₀ coordinates and the rotation are the
`Embedded` wrapper's. As a mixture on R^d it has K^k components, which no GMM code could hold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp

from diffusion_rates.targets.gmm import GMM, dimension, mixture_weights, numbers
from diffusion_rates.targets.subspace import Embedded, haar_isometry
from diffusion_rates.validation import boolean, integer


@dataclass(frozen=True)
class Coordinates:
    """π^{⊗d}: d independent coordinates, each distributed as `factor`, a GMM on R."""

    factor: GMM
    d: int

    @property
    def K(self) -> int:
        return self.factor.K

    @property
    def intrinsic_dim(self) -> int:
        return self.d

    def _per_coordinate(self, method, y, s):
        """Apply a batched (m, 1) -> (m,) or (m, 1) method of the factor to every coordinate."""
        return method(y.reshape(-1, 1), s).reshape(y.shape)

    def log_prob(self, y, s):
        return self._per_coordinate(self.factor.log_prob, y, s).sum(axis=1)

    def score(self, y, s):
        return self._per_coordinate(self.factor.score, y, s)

    def posterior_mean(self, y, s):
        return self._per_coordinate(self.factor.posterior_mean, y, s)

    def sample(self, key, n, s):
        return self.factor.sample(key, n * self.d, s).reshape(n, self.d)


def mixture_1d(weights, means, stds, normalise: bool = False) -> GMM:
    """Σ_j w_j N(m_j, s_j²) as a GMM on R; `normalise` standardises it to mean 0 and variance 1
    (BBDD's Cov = I on the support), which a single atom cannot be beyond centring."""
    w, m, sd = (jnp.asarray(a, jnp.float64) for a in (weights, means, stds))
    if normalise:
        mean = w @ m
        var = float(w @ (sd**2 + (m - mean) ** 2))
        c = 1.0 / math.sqrt(var) if var > 0 else 1.0
        m, sd = c * (m - mean), c * sd
    return GMM(w, m[:, None], sd**2, intrinsic_dim=1, name="pi")


def product(key, d: int, k: int, factor: GMM, rotate: bool, normalisation: str) -> Embedded:
    """`factor`^{⊗k} on the first k coordinates of R^d, or on the span of the first k columns of
    a Haar-random orthogonal matrix when `rotate` (the rest of the matrix acts on δ₀ only)."""
    basis = haar_isometry(key, d, k) if rotate else None
    return Embedded(Coordinates(factor, k), basis, d, "product", normalisation)


def validate_config(c) -> None:
    d = integer("target.d", c.d, 1)
    dimension("target.intrinsic_dim", c.intrinsic_dim, d, "target.d")
    K = integer("target.K", c.K, 1)
    mixture_weights("target.weights", c.weights, K)
    numbers("target.means", c.means, K)
    numbers("target.stds", c.stds, K, low=0.0)
    boolean("target.rotate", c.rotate)
    boolean("target.normalise", c.normalise)
    integer("target.seed", c.seed, 0)


def from_config(c) -> Embedded:
    weights = mixture_weights("target.weights", c.weights, c.K)
    factor = mixture_1d(
        jnp.full(c.K, 1.0 / c.K) if weights is None else weights,
        numbers("target.means", c.means, c.K),
        numbers("target.stds", c.stds, c.K, low=0.0),
        c.normalise,
    )
    normalisation = "cov=I on support" if c.normalise else "none"
    key = jax.random.PRNGKey(c.seed)
    return product(key, c.d, c.intrinsic_dim, factor, c.rotate, normalisation)
