"""Gaussian mixtures Σ π_k N(μ_k, Σ_k) and their noised laws
q_s = Σ π_k N(a_s μ_k, a_s² Σ_k + σ_s² I).

Each Σ_k is kept in eigen-form (U_k, λ_k), λ_k ≥ 0 (0 is a point mass in that direction), so that
V_k = a_s² Σ_k + σ_s² I = U_k diag(a_s² λ_k + σ_s²) U_kᵀ needs no factorisation at any s and stays
exact as s → 0. Isotropic components (Σ_k = λ_k I) take a fast path of matrix products.
This module also holds the list checks that the other mixture families share.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from diffusion_rates.noise import normal
from diffusion_rates.process import alpha, sigma2
from diffusion_rates.validation import ConfigError, boolean, choice, integer, number

COVARIANCES = ("isotropic", "diagonal", "full")
WEIGHT_TOLERANCE = 1e-9


@dataclass(frozen=True)
class GMM:
    """Σ π_k N(μ_k, Σ_k) with Σ_k = U_k diag(λ_k) U_kᵀ.

    `eigvals` is (K,) for isotropic components (Σ_k = λ_k I) and (K, d) otherwise; `bases` (K, d, d)
    holds the eigenvectors U_k as columns, None for axis-aligned (diagonal) components."""

    weights: jax.Array  # (K,)
    means: jax.Array  # (K, d)
    eigvals: jax.Array  # (K,) or (K, d)
    bases: jax.Array | None = None
    intrinsic_dim: int = 0
    normalisation: str = "none"
    name: str = "gmm"

    @property
    def d(self) -> int:
        return self.means.shape[1]

    @property
    def K(self) -> int:
        return self.means.shape[0]

    @property
    def covariance(self) -> str:
        if self.eigvals.ndim == 1:
            return "isotropic"
        return "diagonal" if self.bases is None else "full"

    def noised_eigvals(self, s):
        """Eigenvalues a_s² λ_k + σ_s² of the component covariances V_k of q_s."""
        return alpha(s) ** 2 * self.eigvals + sigma2(s)

    def _log_components(self, x, s):
        """log π_k + log N(x; a_s μ_k, V_k), (n, K), and the residuals x − a_s μ_k in each
        component's eigenbasis, (n, K, d); None for isotropic components, which need only x μᵀ."""
        a, v = alpha(s), self.noised_eigvals(s)
        log_w = jnp.log(self.weights)
        if self.covariance == "isotropic":
            sq = self._squared_distances(x, a)
            return log_w - 0.5 * (sq / v + self.d * jnp.log(2.0 * jnp.pi * v)), None
        e = x[:, None, :] - a * self.means
        if self.bases is not None:
            e = jnp.einsum("nkd,kde->nke", e, self.bases)
        return log_w - 0.5 * jnp.sum(e**2 / v + jnp.log(2.0 * jnp.pi * v), axis=-1), e

    def _squared_distances(self, x, a):
        """|x − a μ_k|², (n, K), expanded so that the (n, K) work is one product x μᵀ. The
        expansion costs ~1e-16 |x|²/v absolute in the logits: 1e-11 at |x|² = 10, s = 1e-4,
        λ = 0."""
        return (
            jnp.sum(x**2, axis=1)[:, None]
            - 2.0 * a * (x @ self.means.T)
            + a**2 * jnp.sum(self.means**2, axis=1)
        )

    def _mix(self, r, w):
        """Σ_k r_k U_k w_k: eigen-coordinates (n, K, d) back to R^d, averaged with weights r."""
        if self.bases is None:
            return jnp.einsum("nk,nkd->nd", r, w)
        return jnp.einsum("nk,nke,kde->nd", r, w, self.bases)

    def log_prob(self, x, s):
        return jax.nn.logsumexp(self._log_components(x, s)[0], axis=1)

    def score(self, x, s):
        """∇ log q_s(x) = Σ_k r_k(x) V_k⁻¹ (a_s μ_k − x), r = softmax of the log components.

        Isotropic: −x Σ_k r_k/v_k + a_s (r/v) μ, the second matrix product after x μᵀ."""
        logits, e = self._log_components(x, s)
        r = jax.nn.softmax(logits, axis=1)
        v = self.noised_eigvals(s)
        if e is None:
            return alpha(s) * (r / v) @ self.means - x * (r @ (1.0 / v))[:, None]
        return -self._mix(r, e / v)

    def hessian_trace(self, x, s):
        """tr ∇² log q_s(x) = −d Σ_k r_k/v_k + Σ_k r_k |g_k|² − |Σ_k r_k g_k|², (n,), with
        g_k = (a_s μ_k − x)/v_k and v_k = a_s² λ_k + σ_s²: isotropic components only."""
        if self.covariance != "isotropic":
            raise ValueError(f"hessian_trace: isotropic components only (got {self.covariance})")
        logits, _ = self._log_components(x, s)
        r = jax.nn.softmax(logits, axis=1)
        a, v = alpha(s), self.noised_eigvals(s)
        sq = self._squared_distances(x, a)  # v_k² |g_k|²
        mean_g = self.score(x, s)  # Σ_k r_k g_k
        return (
            -self.d * (r @ (1.0 / v)) + jnp.sum(r * sq / v**2, axis=1) - jnp.sum(mean_g**2, axis=1)
        )

    def posterior_mean(self, x, s):
        """E[X_0 | X_s = x] = Σ_k r_k(x) m_k(x), with the component posterior means
        m_k(x) = μ_k + a_s Σ_k V_k⁻¹ (x − a_s μ_k), computed directly rather than by Tweedie
        (x + σ_s² ∇log q_s)/a_s, so that Tweedie's identity is a check of `score`."""
        logits, e = self._log_components(x, s)
        r = jax.nn.softmax(logits, axis=1)
        a, v = alpha(s), self.noised_eigvals(s)
        if e is None:
            # m_k = (σ² μ_k + a λ_k x)/v_k: no subtraction, and exactly μ_k when λ_k = 0.
            return (r * (sigma2(s) / v)) @ self.means + a * x * (r @ (self.eigvals / v))[:, None]
        return r @ self.means + a * self._mix(r, self.eigvals * e / v)

    def sample(self, key, n, s):
        """X_s = a_s X_0 + σ_s Z, X_0 = μ_k + U_k λ_k^{1/2} Z', k ~ π: exact at every s ≥ 0."""
        key_k, key_0, key_s = jax.random.split(key, 3)
        k = component(key_k, self.weights, n)
        z = normal(key_0, (n, self.d), self.means.dtype)
        if self.bases is None:
            # (n,) for isotropic, (n, d) for diagonal eigenvalues: both broadcast against z.
            offsets = jnp.sqrt(self.eigvals[k]).reshape(n, -1) * z
        else:
            # One-hot weights instead of gathering an (n, d, d) stack of bases.
            w = jax.nn.one_hot(k, self.K, dtype=z.dtype)[:, :, None] * jnp.sqrt(self.eigvals)
            offsets = jnp.einsum("nke,kde->nd", w * z[:, None, :], self.bases)
        x0 = self.means[k] + offsets
        return alpha(s) * x0 + jnp.sqrt(sigma2(s)) * normal(key_s, x0.shape, x0.dtype)


def component(key, weights, n: int) -> jax.Array:
    """n indices k ~ weights by the inverse CDF of a 32-bit uniform, in float64 whatever the
    weights' dtype (so a float32 copy of a target draws the same components), one threefry word
    per draw: exact up to probabilities resolved to 2⁻³², far below any Monte Carlo error."""
    u = (jax.random.bits(key, (n,), jnp.uint32).astype(jnp.float64) + 0.5) * 2.0**-32
    cdf = jnp.cumsum(jnp.asarray(weights, jnp.float64))
    return jnp.minimum(jnp.searchsorted(cdf / cdf[-1], u), len(cdf) - 1)


def component_covariances(key, covariance: str, scales, d: int, rank: int):
    """Random Σ_k in eigen-form, `rank` nonzero eigenvalues of order scale_k², E Σ_k =
    scale_k² (rank/d) I: isotropic scale_k² I (rank d); diagonal scale_k² diag(u) with
    u_j ~ U(0, 2) on `rank` random coordinates and 0 elsewhere; full scale_k² G Gᵀ/d for a d × rank
    standard Gaussian G, whose SVD gives exact zeros off its span."""
    scales2 = jnp.asarray(scales) ** 2
    K = scales2.shape[0]
    if covariance == "isotropic":
        return scales2, None
    if covariance == "diagonal":
        key_u, key_keep = jax.random.split(key)
        u = jax.random.uniform(key_u, (K, d), maxval=2.0)
        # argsort of uniforms is a random permutation: exactly `rank` entries fall below rank.
        keep = jnp.argsort(jax.random.uniform(key_keep, (K, d)), axis=1) < rank
        return scales2[:, None] * u * keep, None
    basis, sv, _ = jnp.linalg.svd(jax.random.normal(key, (K, d, rank)), full_matrices=True)
    eigvals = jnp.zeros((K, d)).at[:, :rank].set(sv**2 / d)
    return scales2[:, None] * eigvals, basis


def centred_unit_trace(target: GMM) -> GMM:
    """X_0 ↦ c (X_0 − E X_0) with tr Cov X_0 = d afterwards: BBDD's Cov = I scale, in trace
    (Benton et al. 2024), kept to a shift and a scalar so that each Σ_k keeps its structure."""
    centred = target.means - target.weights @ target.means
    traces = target.d * target.eigvals if target.eigvals.ndim == 1 else target.eigvals.sum(1)
    total = float(target.weights @ (traces + jnp.sum(centred**2, axis=1)))
    c = math.sqrt(target.d / total) if total > 0 else 1.0  # a single atom can only be centred
    return dataclasses.replace(
        target,
        means=c * centred,
        eigvals=c**2 * target.eigvals,
        normalisation=f"centred,trace={target.d}",
    )


def gmm(
    key,
    d: int,
    K: int,
    weights=None,
    covariance: str = "isotropic",
    scale=1.0,
    mean_scale: float = 1.0,
    rank: int | None = None,
    normalise: bool = False,
) -> GMM:
    """Means μ_k ~ N(0, mean_scale² I), Σ_k from `component_covariances` with `scale` (one
    number or K); `weights` None = uniform; `rank` (diagonal and full only) None = d;
    `normalise`: `centred_unit_trace`."""
    rank = d if rank is None or covariance == "isotropic" else rank
    key_means, key_cov = jax.random.split(key)
    w = jnp.full(K, 1.0 / K) if weights is None else jnp.asarray(weights, jnp.float64)
    means = mean_scale * jax.random.normal(key_means, (K, d))
    scales = jnp.broadcast_to(jnp.asarray(scale, jnp.float64), (K,))
    eigvals, bases = component_covariances(key_cov, covariance, scales, d, rank)
    target = GMM(w, means, eigvals, bases, intrinsic_dim=rank if float(scales.max()) > 0 else 0)
    return centred_unit_trace(target) if normalise else target


def is_list(value) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str)


def _at_least(value, low) -> bool:
    is_num = isinstance(value, int | float) and not isinstance(value, bool)
    return is_num and math.isfinite(value) and value >= low


def numbers(key, value, length: int, low: float = -math.inf, scalar_ok: bool = False):
    """`length` finite numbers >= low as a list (or, with scalar_ok, one number for all)."""
    if scalar_ok and not is_list(value):
        return np.full(length, number(key, value, low=low))
    if not (is_list(value) and len(value) == length and all(_at_least(v, low) for v in value)):
        bound = f" >= {low:g}" if math.isfinite(low) else ""
        one = f"a number{bound} or " if scalar_ok else ""
        shown = list(value) if is_list(value) else value
        raise ConfigError(f"{key}: {one}a list of {length} numbers{bound} (got {shown!r})")
    return np.asarray(list(value), dtype=np.float64)


def mixture_weights(key, value, K: int):
    """null = uniform; else K numbers >= 0 summing to 1 within WEIGHT_TOLERANCE."""
    if value is None:
        return None
    w = numbers(key, value, K, low=0.0)
    if abs(w.sum() - 1.0) > WEIGHT_TOLERANCE:
        raise ConfigError(
            f"{key}: {K} numbers >= 0 summing to 1 within {WEIGHT_TOLERANCE:g} "
            f"(got {list(value)!r}, sum {float(w.sum())!r})"
        )
    return w


def dimension(key, value, high: int, what: str) -> int:
    """An integer in [1, high], `what` naming the bound (e.g. "target.d")."""
    integer(key, value, 1)
    if value > high:
        raise ConfigError(f"{key}: an integer <= {what} = {high} (got {value!r})")
    return value


def validate_mixture(c) -> None:
    """The keys of a random mixture: K, weights, covariance, scale, mean_scale, normalise, seed."""
    K = integer("target.K", c.K, 1)
    mixture_weights("target.weights", c.weights, K)
    choice("target.covariance", c.covariance, COVARIANCES)
    numbers("target.scale", c.scale, K, low=0.0, scalar_ok=True)
    number("target.mean_scale", c.mean_scale, low=0.0)
    boolean("target.normalise", c.normalise)
    integer("target.seed", c.seed, 0)


def validate_config(c) -> None:
    d = integer("target.d", c.d, 1)
    if c.intrinsic_dim is not None:
        dimension("target.intrinsic_dim", c.intrinsic_dim, d, "target.d")
    validate_mixture(c)
    if c.covariance == "isotropic" and c.intrinsic_dim not in (None, d):
        raise ConfigError(
            f"target.intrinsic_dim: null or {d} = target.d for covariance=isotropic "
            f"(got {c.intrinsic_dim!r})"
        )


def mixture_from_config(c, key, dim: int, rank: int | None = None) -> GMM:
    """The mixture of `validate_mixture`'s keys on R^dim, components of rank `rank` (None = dim)."""
    return gmm(
        key,
        dim,
        c.K,
        mixture_weights("target.weights", c.weights, c.K),
        c.covariance,
        numbers("target.scale", c.scale, c.K, low=0.0, scalar_ok=True),
        c.mean_scale,
        rank,
        c.normalise,
    )


def from_config(c) -> GMM:
    return mixture_from_config(c, jax.random.PRNGKey(c.seed), c.d, c.intrinsic_dim)
