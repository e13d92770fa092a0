"""Uniform laws on products of round spheres embedded in R^D: the `sphere` and `torus` targets.

X_0 = c + E·r·(U_1, ..., U_g) with U_j independent and uniform on the unit sphere S^{m-1} ⊂ R^m and
E a D × gm matrix with orthonormal columns (a Haar-random isometry, or the first gm axes):
`sphere` S^k_r is g = 1, m = k + 1; the flat `torus` (S¹_r)^k is g = k, m = 2.

Noised law. Per block, Y = a r U + σ Z in R^m has, since E_U e^{b·U} = Γ(ν+1)(2/|b|)^ν I_ν(|b|)
with ν = m/2 - 1,

    q(y) = (2πσ²)^{-m/2} exp(-(ρ² + a²r²)/(2σ²)) Γ(ν+1) (2/κ)^ν I_ν(κ),  ρ = |y|, κ = a r ρ/σ²,

          = (2πσ²)^{-m/2} exp(-(ρ - a r)²/(2σ²)) ĩ_ν(κ) e^{-κ}             (ĩ_ν(0) = 1),

written the second way (bessel.log_ive_normalised) so that no two terms of size κ cancel and the
limit κ → 0 is exact. For m = 2 (ν = 0) this is the torus plane density
exp(-(ρ² + a²r²)/(2σ²)) I₀(κ)/(2πσ²). The D - gm directions off the span are N(0, σ² I). Then

    ∇ log q(y) = -y/σ² + (a r/σ²) R_ν(κ) y/ρ,   E[r U | Y = y] = r R_ν(κ) y/ρ,

the second because U | Y = y is von Mises–Fisher with mean direction y/ρ and concentration κ,
whose mean is R_ν(κ) y/ρ (Mardia & Jupp 2000, §9.3); the two are coded separately so that Tweedie's
identity m_s = (x + σ² ∇log q_s)/a checks one against the other.

Normalisation. `centred`: c = 0. `pad`: c = -r Σ_j E e_{(j-1)m+1}, one point per block, so that
0 ∈ M, the assumption of Potaptchik, Azangulov & Deligiannidis (2025) together with diam M <= 1;
the diameter is 2r√g (2r for the sphere, 2r√k for the torus). A translation by c moves q_s by a·c:
q_s(x) = q̃_s(x - a c), ∇log q_s(x) = ∇log q̃_s(x - a c) and m_s(x) = c + m̃_s(x - a c).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from diffusion_rates.noise import normal
from diffusion_rates.process import alpha, sigma2
from diffusion_rates.targets.bessel import bessel_ratio, log_ive_normalised
from diffusion_rates.validation import ConfigError, boolean, choice, integer, number

NORMALISATIONS = ("centred", "pad")


def norm(y):
    """|y| over the last axis, with gradient 0 rather than NaN at y = 0 (the block densities are
    smooth functions of |y|², so 0 is the right value there)."""
    sq = jnp.sum(y**2, axis=-1)
    positive = sq > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, sq, 1.0)), 0.0)


def noised_sphere_log_density(y, nu: float, ar, s2):
    """log q(y) of Y = a r U + σ Z in R^m, m = 2ν + 2 (module docstring), over the last axis."""
    rho = norm(y)
    m = 2.0 * nu + 2.0
    return (
        -0.5 * m * jnp.log(2.0 * jnp.pi * s2)
        - (rho - ar) ** 2 / (2.0 * s2)
        + log_ive_normalised(nu, ar * rho / s2)
    )


def vmf_mean(y, nu: float, ar, s2):
    """E[U | a r U + σ Z = y] = R_ν(κ) y/|y|, κ = a r |y|/σ²: the mean of the von Mises–Fisher
    posterior of U (0 at y = 0, where R_ν(0) = 0)."""
    rho = norm(y)
    ratio = bessel_ratio(nu, ar * rho / s2) / jnp.where(rho > 0, rho, 1.0)
    return ratio[..., None] * y


@dataclass(frozen=True)
class SphereProduct:
    """X_0 = c + E·r·(U_1, ..., U_g), U_j uniform on S^{m-1} ⊂ R^m (module docstring).

    log_prob and score need s > 0; sample(key, n, 0) draws X_0."""

    embedding: jax.Array  # (D, g·m), orthonormal columns; block j is columns (j-1)m ... jm - 1
    groups: int  # g
    group_dim: int  # m
    radius: float  # r
    centre: jax.Array  # (D,) c
    normalisation: str
    name: str

    K = 1

    @property
    def d(self) -> int:
        return self.embedding.shape[0]

    @property
    def intrinsic_dim(self) -> int:
        return self.groups * (self.group_dim - 1)

    @property
    def diameter(self) -> float:
        return 2.0 * self.radius * math.sqrt(self.groups)

    @property
    def order(self) -> float:
        """ν = m/2 - 1, the Bessel order of one block."""
        return 0.5 * self.group_dim - 1.0

    def blocks(self, x, s):
        """x - a c (n, D) and its span coordinates (n, g, m)."""
        centred = x - alpha(s) * self.centre
        span = centred @ self.embedding
        return centred, span.reshape(span.shape[:-1] + (self.groups, self.group_dim))

    def from_blocks(self, v):
        """(n, g, m) span coordinates -> (n, D)."""
        return v.reshape(v.shape[:-2] + (-1,)) @ self.embedding.T

    def log_prob(self, x, s):
        s2 = sigma2(s)
        centred, y = self.blocks(x, s)
        # |x_⊥|² from the residual, not as |x|² - |y|²: that loses ε|x|²/σ² (1e-10 at s = 1e-7).
        off_span = jnp.sum((centred - self.from_blocks(y)) ** 2, axis=-1)
        on_span = noised_sphere_log_density(y, self.order, alpha(s) * self.radius, s2)
        n_off = self.d - self.groups * self.group_dim
        return (
            jnp.sum(on_span, axis=-1)
            - off_span / (2.0 * s2)
            - 0.5 * n_off * jnp.log(2.0 * jnp.pi * s2)
        )

    def score(self, x, s):
        """-(x - a c)/σ² + (a r/σ²) E R_ν(κ_j) y_j/|y_j| over the blocks j."""
        ar, s2 = alpha(s) * self.radius, sigma2(s)
        centred, y = self.blocks(x, s)
        return (ar * self.from_blocks(vmf_mean(y, self.order, ar, s2)) - centred) / s2

    def posterior_mean(self, x, s):
        """c + r E R_ν(κ_j) y_j/|y_j| over the blocks j."""
        ar, s2 = alpha(s) * self.radius, sigma2(s)
        _, y = self.blocks(x, s)
        return self.centre + self.radius * self.from_blocks(vmf_mean(y, self.order, ar, s2))

    def sample(self, key, n, s):
        key_u, key_z = jax.random.split(key)
        dtype = self.embedding.dtype
        u = normal(key_u, (n, self.groups, self.group_dim), dtype)
        u = u / jnp.linalg.norm(u, axis=-1, keepdims=True)  # uniform on each unit sphere
        x0 = self.centre + self.radius * self.from_blocks(u)
        z = normal(key_z, (n, self.d), dtype)
        return alpha(s) * x0 + jnp.sqrt(sigma2(s)) * z


def isometry(d: int, span: int, rotate: bool, seed: int):
    """A d × span matrix with orthonormal columns: Haar-random (QR of a Gaussian matrix with the
    signs of diag R fixed, Mezzadri 2007) if `rotate`, else the first `span` coordinate axes."""
    if not rotate:
        return jnp.eye(d, span)
    # numpy, not jax.random: built once per target, and no compilation for each new shape.
    q, r = np.linalg.qr(np.random.default_rng(seed).standard_normal((d, span)))
    return jnp.asarray(q * np.sign(np.diag(r)))


def sphere_product(
    name: str,
    d: int,
    groups: int,
    group_dim: int,
    radius: float,
    normalisation: str,
    rotate: bool,
    seed: int,
) -> SphereProduct:
    """Build the target; `pad` puts one point of each block at the origin (module docstring)."""
    embedding = isometry(d, groups * group_dim, rotate, seed)
    centre = jnp.zeros(d)
    if normalisation == "pad":
        centre = -radius * jnp.sum(embedding[:, ::group_dim], axis=1)
    return SphereProduct(embedding, groups, group_dim, radius, centre, normalisation, name)


def validate_keys(c, layout, span_rule: str) -> None:
    """The keys the two families share. `layout(k)` gives (g, m) for intrinsic dimension k; the
    span gm must fit in target.d (`span_rule` says how it follows from k), and `pad` needs the
    diameter 2r√g <= 1."""
    d = integer("target.d", c.d, 1)
    k = integer("target.intrinsic_dim", c.intrinsic_dim, 1)
    number("target.radius", c.radius, low=0.0, low_open=True)
    choice("target.normalisation", c.normalisation, NORMALISATIONS)
    boolean("target.rotate", c.rotate)
    integer("target.seed", c.seed, 0)
    groups, group_dim = layout(k)
    if groups * group_dim > d:
        raise ConfigError(
            f"target.intrinsic_dim: an integer with {span_rule} <= target.d = {d} (got {k})"
        )
    if c.normalisation == "pad":
        number(
            "target.radius",
            c.radius,
            low=0.0,
            high=0.5 / math.sqrt(groups),
            low_open=True,
            what=" (normalisation=pad: diameter <= 1, PAD's assumption)",
        )
