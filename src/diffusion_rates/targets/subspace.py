"""Laws on a random k-dimensional subspace of R^d, with δ₀ on its complement.

If X_0 = U Y_0 for U (d × k) with orthonormal columns, then X_s = U Y_s + σ_s P⊥Z with
P⊥ = I − UUᵀ, so the noised law factorises over span(U) and its complement:
q_s(x) = p_s(Uᵀx) · N(P⊥x; 0, σ_s² I_{d−k}), ∇log q_s(x) = U ∇log p_s(Uᵀx) − P⊥x/σ_s² and
E[X_0 | X_s = x] = U E[Y_0 | Y_s = Uᵀx]. The `subspace` family puts a Gaussian or a mixture there.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp

from diffusion_rates.noise import normal
from diffusion_rates.process import sigma2
from diffusion_rates.targets.gmm import dimension, mixture_from_config, validate_mixture
from diffusion_rates.validation import integer


def haar_isometry(key, d: int, k: int):
    """d × k with orthonormal columns, distributed as the first k columns of a Haar-random
    orthogonal matrix: QR of a Gaussian matrix, R's diagonal signs moved into Q (Mezzadri 2007)."""
    q, r = jnp.linalg.qr(jax.random.normal(key, (d, k)))
    return q * jnp.sign(jnp.diag(r))


@dataclass(frozen=True)
class Embedded:
    """`inner`, a target on R^k, placed on span(U) ⊂ R^d: X_0 = U Y_0.

    `basis=None` means U = the first k coordinate vectors: the fast path for axis-aligned laws."""

    inner: object
    basis: jax.Array | None  # (d, k), orthonormal columns
    d: int
    name: str
    normalisation: str = "none"

    @property
    def K(self) -> int:
        return self.inner.K

    @property
    def intrinsic_dim(self) -> int:
        return self.inner.intrinsic_dim

    def _split(self, x):
        """(Uᵀx, the complement part of x): the last d − k coordinates when U is axis-aligned,
        else P⊥x = x − U Uᵀx in R^d (|P⊥x|² as |x|² − |Uᵀx|² would cancel for small σ_s)."""
        if self.basis is None:
            return x[:, : self.inner.d], x[:, self.inner.d :]
        y = x @ self.basis
        return y, x - y @ self.basis.T

    def _join(self, y, perp):
        """Inverse of `_split`: U y + perp."""
        if self.basis is None:
            return jnp.concatenate([y, perp], axis=1)
        return y @ self.basis.T + perp

    def log_prob(self, x, s):
        y, perp = self._split(x)
        codim = self.d - self.inner.d
        if codim == 0:  # no complement: at s = 0 its terms would read 0/0 and 0·log 0
            return self.inner.log_prob(y, s)
        v = sigma2(s)
        complement = -0.5 * (jnp.sum(perp**2, axis=1) / v + codim * jnp.log(2.0 * jnp.pi * v))
        return self.inner.log_prob(y, s) + complement

    def score(self, x, s):
        y, perp = self._split(x)
        return self._join(self.inner.score(y, s), -perp / sigma2(s))

    def posterior_mean(self, x, s):
        y, perp = self._split(x)
        return self._join(self.inner.posterior_mean(y, s), jnp.zeros_like(perp))

    def sample(self, key, n, s):
        key_inner, key_perp = jax.random.split(key)
        inner = self.inner.sample(key_inner, n, s)
        _, perp = self._split(normal(key_perp, (n, self.d), inner.dtype))
        return self._join(inner, jnp.sqrt(sigma2(s)) * perp)


def validate_config(c) -> None:
    d = integer("target.d", c.d, 1)
    dimension("target.intrinsic_dim", c.intrinsic_dim, d, "target.d")
    validate_mixture(c)


def from_config(c) -> Embedded:
    """The mixture of the config's keys on R^k (K = 1, mean_scale = 0: a centred Gaussian), placed
    on a Haar-random k-dimensional subspace."""
    key_inner, key_basis = jax.random.split(jax.random.PRNGKey(c.seed))
    inner = mixture_from_config(c, key_inner, c.intrinsic_dim)
    basis = haar_isometry(key_basis, c.d, c.intrinsic_dim)
    return Embedded(inner, basis, c.d, "subspace", inner.normalisation)
