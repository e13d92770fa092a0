"""`quadrature`: the output law of a one-step sampler on a target that reduces to one dimension,
propagated on a grid (docs/estimators.md). Its only error is the grid's.

Reduction. A one-step sampler y' = A y + B ŝ(y, s) + C z (scalars A, B, C; z ~ N(0, I)) commutes
with every orthogonal map that commutes with the score, and so do its initial laws N(0, I) and q_T:

- `product` (π^{⊗k} ⊗ δ₀^{⊗(D−k)}, rotated by U): in the frame of U the score is coordinatewise,
  so the output law is the rotation of p^{⊗k} ⊗ N(0, v)^{⊗(D−k)}, with p the law of one mixture
  coordinate under x ↦ A x + B ŝ_π(x, s) + C z, ŝ_π the score of the noised 1-D mixture.
- `torus` ((S¹_r)^k, g = k blocks of dimension m = 2) and `sphere` (S^k_r, g = 1, m = k + 1),
  centred: q_s factorises over the blocks and the complement, and in a block
  ∇log q_s(y) = f_s(ρ) y/ρ with ρ = |y|, f_s(ρ) = (a r R_ν(a r ρ/σ²) − ρ)/σ², ν = m/2 − 1
  (targets/manifold.py). A block law stays rotation invariant, so its radius carries it: the
  deterministic part moves ρ to |A ρ + B f_s(ρ)| = μ, and the m-dimensional N(0, C² I) turns μ
  into the noncentral chi law of m degrees of freedom,
      p(ρ' | μ) = |S^{m−1}| ρ'^{m−1} (2πC²)^{−m/2} exp(−(ρ' − μ)²/(2C²)) ĩ_ν(κ) e^{−κ},
  κ = ρ'μ/C², ĩ_ν(κ) e^{−κ} = Γ(ν+1) (2/κ)^ν I_ν(κ) e^{−κ} (targets/bessel.py); for m = 2 this is
  Rice's law (ρ'/C²) exp(−(ρ'² + μ²)/(2C²)) I₀(ρ'μ/C²). In the steps the Bessel factor is read
  from a table of `bessel.log_ive_normalised` in log κ (cubic interpolation, error <= 1e-10 in
  the log), because the exact routine costs about 100 ns a call and a step needs n² of them.
- Multi-stage rules, from their own step functions on one coordinate (`MultiStage`): the
  probability-flow Euler and Heun steps are deterministic maps y ↦ T(y) along the coordinate or
  the ray (a radius stays on its ray), pushed as DDIM's are; SRA1 on `product` is, given the
  noise ζ of its second stage, Gaussian with variance g²h/4, so its kernel is the Gauss–Hermite
  sum Σ_j w_j N(T_j(y), g²h/4) over SRA1_NODES nodes ζ_j (`sra1_nodes`), taken by Nyström steps
  (several branches cannot be pushed: an unresolved one fails its check and the grid doubles).
- The complement (the D − k, D − 2k or D − k − 1 δ₀ directions): Gaussian, N(0, v) per
  coordinate with v' = (A − B/σ_s²)² v + C², exact by metrics/exact.py (eigenvalue 0).

Sufficient statistics. Two rotation-invariant laws on R^m have densities p(|y|), q(|y|) against
the same uniform law of the direction, so their KL, TV and Hellinger distances are those of their
radial laws; so is W2, since |x − y| >= ||x| − |y|| for every coupling, with equality for the
coupling that shares the direction and couples the radii optimally. Over independent blocks,
KL adds, W2² adds (a product of optimal couplings is optimal for a separable quadratic cost) and
the Bhattacharyya coefficient 1 − H² multiplies. TV does not factor: with several blocks it is
the Monte Carlo average TV = E_q (1 − Π_i r_i)_+, r_i = p_i/q_i the exact block ratios (equal to
½ E_q |1 − Π r_i| when p << q, but exact without it and bounded by 1, so of smaller variance), each
block drawn from q_δ's discretisation on the grid (the complement's ratio depends on a χ² draw
only); its standard error is reported. With one block and no complement TV is a quadrature too.

Grid. A block law is kept as nodes y_i = y(u_i) of a uniform grid u_i = u_0 + i h, the log-density
log g_i of the law in u, and log J_i = log dy/du; masses are h g_i. For a coordinate u = y; for a
radius ρ = c log(1 + e^u) (Radial.nodes): uniform in ρ where the mass is, and logarithmic towards
ρ = 0, where the radial density ∝ ρ^{m−1} then decays smoothly in u, so the trapezoid rule stays
spectrally accurate (a plain ρ-grid has an endpoint error of order h^m there). Each grid spans the
law's support, which leaves out TAIL = 1e-14 of its mass in each tail, widened by REACH kernel
widths and joined with q_{s'}'s support: it follows the law as it sharpens towards s = δ (to a
width σ_s around the modes, or around the radius a r). With T the deterministic map, a step is:

- Nyström, when C > 0: the new density on a fresh grid is the exact image of the discretised
  measure,
      g'(u'_j) = Σ_i h g_i K_C(y(u'_j) | T(y_i)) dy/du(u'_j),
  which needs no preimages (T folds for `ei` or `em` with large steps on a sharp law), and is
  spectrally accurate where the kernel's width in u, w = C/|dT/du|, spans a node spacing h: the
  trapezoid rule's error on a Gaussian feature is about exp(−2π² w²/h²) (`aliasing`, weighted
  by mass, in `_propagate`).
- semi-Lagrangian instead, when that error exceeds ALIASING, C is under RESOLVED node spacings
  everywhere in the bulk and T is increasing (late steps on a smooth law, where C → 0 while the
  law keeps its width): nodes move y_i → T(y_i) exactly (log J gains log T' by autodiff), log p
  is interpolated onto a fresh grid (8-point Lagrange in the node index), and N(0, C² I) is
  applied as the heat equation's probability flow over a time C² (`_heat`, differences of
  order 8).
- the same without the heat flow when C = 0 (DDIM's T is increasing: T' >= σ_{s'}/σ_s since
  ∂ŝ >= −1/σ_s²). Moving the nodes alone would be exact on the discretised measure, but after
  many steps they thin out where T stretches (the valley between two modes) and stop resolving
  q_δ there; the fresh grid keeps every step's law resolved.

Metrics on a block, from the output nodes (densities p, q in y, weights w_i = h J_i):
kl = Σ w (q log(q/p) − q + p), kl_reverse the same with p and q swapped (the Bregman form:
pointwise >= 0, and free of the first-order effect of a mass error), H² = ½ Σ w (√p − √q)²,
tv = ½ Σ w |p − q|, and W2² = ∫_0^1 (F_p^{−1} − F_q^{−1})² dv = Σ h g_i (y_i − F_q^{−1}(F_p(y_i)))²,
both CDFs on the same nodes by the sixth-order cumulative rule, F_q^{−1} by Newton's method on
its cubic Hermite interpolant, from each tail up to the median. q_δ is the target's closed form:
the 1-D mixture's log_prob for `product`; for a radius, the density above with (μ, C²) = (a r, σ²)
and the exact Bessel routine, i.e. the target's log_prob on the span times the surface factor
|S^{m−1}| ρ^{m−1} (the tests check the two agree). At δ = 0 a sphere, a torus or an atom of π
makes q_δ singular: kl and kl_reverse are then infinite, tv and hellinger 1, and w2 is taken
against the atoms (NaN for a π with both atoms and Gaussian components).

Checks and floor. Every result is computed at n and n/2 grid points and its floor is
|value(n) − value(n/2)| (inf if the n/2 run breaks down). In the run at n the probability mass
Σ h g must stay 1 within MASS_TOLERANCE = 1e-8 after every step (Nyström steps lose only the
TAIL-level mass outside the grid and their aliasing error, interpolation loses its own error;
nothing is renormalised), q_δ's mass on the output nodes must be 1 as well (else part of q_δ's
support lies off the grid), and semi-Lagrangian nodes must stay in order; a violation raises
FloatingPointError, which the app records as a failed measurement.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from diffusion_rates.metrics import exact
from diffusion_rates.process import alpha, sigma2
from diffusion_rates.schedules import Grid
from diffusion_rates.targets.bessel import log_ive_normalised
from diffusion_rates.targets.gaussian import Gaussian
from diffusion_rates.targets.gmm import GMM
from diffusion_rates.targets.manifold import vmf_mean

TARGETS = ("product", "torus", "sphere")
METRICS = ("kl", "kl_reverse", "tv", "w2", "hellinger")
INITS = ("standard", "target")
DEFAULT_GRID_SIZE = 512
TAIL = 1e-14  # mass a grid may leave out in each tail
REACH = math.sqrt(2.0 * math.log(1.0 / TAIL))  # Gaussian tails beyond: e^{−REACH²/2} = TAIL
MASS_TOLERANCE = 1e-8
REFINEMENTS = 3  # a default grid that fails its checks is doubled, up to 8 × DEFAULT_GRID_SIZE
ALIASING = 1e-13  # a Nyström step with a larger estimated error is replaced by ...
RESOLVED = 1.25  # ... a semi-Lagrangian one if the kernel is under this many spacings throughout
# The heat flow diffuses the nodes with coefficient ½ per squared spacing: RK4 (stable to 2.78)
# with the eighth-order second difference (eigenvalues up to 6.5 per squared spacing) over a time
# C² <= 1.56 spacing² needs 2 substeps; 4 keep a margin.
HEAT_SUBSTEPS = 4
TV_SAMPLES = 2**14
# The Bessel table: log κ from BESSEL_LOG_RANGE[0] to [1] in steps of BESSEL_STEP. Below it the
# series −κ + κ²/(4(ν+1)) is exact to κ⁴ (1e-14); above it log ĩ_ν is −(ν+½) log κ + const up to
# (4ν² − 1)/(8κ), under 1e-13 for ν <= 50.
BESSEL_LOG_RANGE = (math.log(1e-3), math.log(1e17))
BESSEL_STEP = 1.0 / 256
RADIAL_STEP = 0.5  # grid step in u for radii (Radial.nodes)


def _log_noncentral_chi(z, mu, c2, dim: int, log_bessel):
    """log p(z | μ) of |μ e + C Z| in R^dim, Z ~ N(0, I), C² = c2 (module docstring);
    `log_bessel(κ, log κ)` = log[ĩ_ν(κ) e^{−κ}], ν = dim/2 − 1. log κ is formed from the logs
    of z and μ, so that an outer product of them takes no logarithm per entry."""
    log_surface = math.log(2.0) + 0.5 * dim * math.log(math.pi) - math.lgamma(0.5 * dim)
    log_z = jnp.log(z)
    return (
        log_surface
        + (dim - 1) * log_z
        - 0.5 * dim * jnp.log(2.0 * jnp.pi * c2)
        - (z - mu) ** 2 / (2.0 * c2)
        + log_bessel(z * mu / c2, log_z + jnp.log(mu) - jnp.log(c2))
    )


def bessel_table(nu: float):
    """log[ĩ_ν(κ) e^{−κ}] at κ = exp(BESSEL_LOG_RANGE[0] + j·BESSEL_STEP)."""
    lo, hi = BESSEL_LOG_RANGE
    log_kappa = np.arange(lo, hi + 0.5 * BESSEL_STEP, BESSEL_STEP)
    return log_ive_normalised(nu, jnp.asarray(np.exp(log_kappa)))


def tabulated_log_bessel(table, nu: float, kappa, log_kappa):
    """log[ĩ_ν(κ) e^{−κ}] from `bessel_table(nu)`: the cubic through the four nearest entries
    (error about 0.02·BESSEL_STEP⁴·|∂⁴/∂(log κ)⁴|: 1e-11 for ν <= 5, 1e-10 at ν = 50), the series
    below the table and
    the asymptotic slope −(ν+½) above it."""
    x = (log_kappa - BESSEL_LOG_RANGE[0]) / BESSEL_STEP
    last = table.shape[0] - 1.0
    k = jnp.clip(jnp.floor(x), 1.0, last - 2.0)
    t = x - k
    k = k.astype(jnp.int32)
    cubic = (
        -t * (t - 1.0) * (t - 2.0) / 6.0 * table[k - 1]
        + (t + 1.0) * (t - 1.0) * (t - 2.0) / 2.0 * table[k]
        - (t + 1.0) * t * (t - 2.0) / 2.0 * table[k + 1]
        + (t + 1.0) * t * (t - 1.0) / 6.0 * table[k + 2]
    )
    series = -kappa + kappa**2 / (4.0 * (nu + 1.0))
    asymptotic = table[-1] - (nu + 0.5) * (x - last) * BESSEL_STEP
    return jnp.where(x < 0.0, series, jnp.where(x > last, asymptotic, cubic))


@partial(
    jax.tree_util.register_dataclass,
    data_fields=["weights", "means", "variances"],
    meta_fields=[],
)
@dataclass(frozen=True)
class Line:
    """One coordinate of a `product` target: π = Σ_j w_j N(m_j, v_j) on R, grid variable u = y."""

    weights: jax.Array
    means: jax.Array
    variances: jax.Array

    def _mixture(self):
        return GMM(self.weights, self.means[:, None], self.variances)

    def nodes(self, lo, hi, n: int):
        """n nodes uniform in y from lo to hi: (y, log dy/du, h)."""
        y = jnp.linspace(lo, hi, n)
        return y, jnp.zeros(n), y[1] - y[0]

    def drift(self, y, s):
        """ŝ_π(y, s): the score of the noised mixture."""
        return self._mixture().score(y[:, None], s)[:, 0]

    def fold(self, y):
        return y

    def log_shell(self, y):
        return jnp.zeros_like(y)

    def log_kernel(self, z, mu, c2):
        """N(z; μ, c2)."""
        return -0.5 * ((z - mu) ** 2 / c2 + jnp.log(2.0 * jnp.pi * c2))

    def kernel_support(self, lo, hi, c2):
        c = jnp.sqrt(c2)
        return lo - REACH * c, hi + REACH * c

    def log_standard(self, y):
        return self.log_kernel(y, 0.0, 1.0)

    def log_reference(self, y, s):
        return self._mixture().log_prob(y[:, None], s)

    def reference_support(self, s):
        a = alpha(s)
        sd = jnp.sqrt(a**2 * self.variances + sigma2(s))
        return jnp.min(a * self.means - REACH * sd), jnp.max(a * self.means + REACH * sd)

    def singular(self, s) -> bool:
        return bool(sigma2(s) == 0 and jnp.any(self.variances == 0))

    def atoms(self):
        """q_0 as atoms (positions, weights); NaN where π also has a Gaussian part."""
        nan = jnp.where(jnp.all(self.variances == 0), 0.0, jnp.nan)
        return self.means + nan, self.weights


@partial(jax.tree_util.register_dataclass, data_fields=["radius", "table"], meta_fields=["dim"])
@dataclass(frozen=True)
class Radial:
    """The radius of one rotation-invariant block of dimension `dim` of a centred sphere or torus
    of radius r (grid in `nodes`). `table` = bessel_table(dim/2 − 1)."""

    dim: int
    radius: jax.Array
    table: jax.Array

    @property
    def order(self) -> float:
        return 0.5 * self.dim - 1.0

    def nodes(self, lo, hi, n: int):
        """n radii from lo to hi uniform in u, ρ = c·log(1 + e^u): about uniform in ρ above the
        scale c and in log ρ below it, with c chosen so that the steps in u are about
        RADIAL_STEP: the inner tail (∝ ρ^{m−1}, where a hole holds mass) takes
        log(c/lo)/RADIAL_STEP nodes, and the rest are spaced evenly where the mass is.
        Returns (ρ, log dρ/du, h)."""
        span = (n - 1) * RADIAL_STEP
        c = (hi - lo) / jnp.maximum(span - jnp.log(hi / lo), 0.5 * span)

        def inverse(rho):  # log(e^{ρ/c} − 1), stable for large ρ/c
            x = rho / c
            return x + jnp.log(-jnp.expm1(-x))

        u = jnp.linspace(inverse(lo), inverse(hi), n)
        return c * jax.nn.softplus(u), jnp.log(c) + jax.nn.log_sigmoid(u), u[1] - u[0]

    def drift(self, y, s):
        """f_s(ρ) = (a r R_ν(a r ρ/σ²) − ρ)/σ², the radial part of the target's score, at
        ρ = |y|, signed: the score along the line through the unit vector e at y e (a multi-stage
        rule may step across ρ = 0)."""
        ar, s2, rho = alpha(s) * self.radius, sigma2(s), jnp.abs(y)
        return jnp.sign(y) * (ar * vmf_mean(rho[:, None], self.order, ar, s2)[:, 0] - rho) / s2

    def fold(self, y):
        return jnp.abs(y)  # |(A ρ + B f_s(ρ)) e| for a signed multiple of the unit vector e

    def log_shell(self, rho):
        """log ρ^{m−1}: radial density = |S^{m−1}| ρ^{m−1} × the density in R^m."""
        return (self.dim - 1) * jnp.log(rho)

    def log_kernel(self, z, mu, c2):
        bessel = partial(tabulated_log_bessel, self.table, self.order)
        return _log_noncentral_chi(z, mu, c2, self.dim, bessel)

    def kernel_support(self, lo, hi, c2):
        """Radii of μ e + C Z for μ in [lo, hi]: none under μ − REACH C (one coordinate), none
        under C·TAIL^{1/m} (the density in R^m is at most (2πC²)^{−m/2}) and none above
        μ + C(√m + REACH) (|Z| concentrates at √m with Gaussian tails), each up to TAIL."""
        c = jnp.sqrt(c2)
        lower = jnp.maximum(lo - REACH * c, c * TAIL ** (1.0 / self.dim))
        return lower, hi + c * (math.sqrt(self.dim) + REACH)

    def _exact_bessel(self, kappa, log_kappa):
        return log_ive_normalised(self.order, kappa)

    def log_standard(self, rho):
        """The chi law of N(0, I_m)'s radius."""
        return _log_noncentral_chi(rho, 0.0, 1.0, self.dim, self._exact_bessel)

    def log_reference(self, rho, s):
        """The radius of a r U + σ Z: the noised uniform law's closed form (targets/manifold.py)
        times the surface factor, with the exact Bessel routine."""
        ar = alpha(s) * self.radius
        return _log_noncentral_chi(rho, ar, sigma2(s), self.dim, self._exact_bessel)

    def reference_support(self, s):
        ar = alpha(s) * self.radius
        return self.kernel_support(ar, ar, sigma2(s))

    def singular(self, s) -> bool:
        return bool(sigma2(s) == 0)

    def atoms(self):
        return jnp.reshape(self.radius, (1,)), jnp.ones(1)


class Blocks(NamedTuple):
    """A target as `count` independent copies of `block` filling `span` dimensions; the other
    D − span are the Gaussian complement."""

    block: Line | Radial
    count: int
    span: int


def decompose(target) -> Blocks:
    """The block structure of a `product`, `torus` or `sphere` target."""
    if target.name == "product":
        factor = target.inner.factor
        line = Line(factor.weights, factor.means[:, 0], factor.eigvals)
        return Blocks(line, target.inner.d, target.inner.d)
    if target.name in ("torus", "sphere"):
        if bool(jnp.any(target.centre != 0)):
            raise ValueError(
                "quadrature: the target must be centred (normalisation=centred): N(0, I) is not "
                "rotation invariant about the centre of a `pad` target"
            )
        m = target.group_dim
        radial = Radial(m, jnp.asarray(target.radius, jnp.float64), bessel_table(0.5 * m - 1.0))
        return Blocks(radial, target.groups, target.groups * m)
    raise ValueError(f"quadrature: targets {', '.join(TARGETS)} only (got {target.name!r})")


def valid(sampler, target_name: str) -> bool:
    """One-step samplers and the deterministic flows on the targets that reduce to one
    dimension, SRA1 on `product`. Also needed, and checked by `quadrature`: a centred sphere or
    torus; and the exact score (a score error field breaks the symmetry the reduction rests on)."""
    if target_name not in TARGETS:
        return False
    if sampler.name in LINE_ONLY:
        return target_name == "product"
    return sampler.coefficients is not None or sampler.name in NOISE_NODES


class Law(NamedTuple):
    """A block law on nodes y_i = y(u_i), u_i = u_0 + i h: the log-density log g_i of the law in u
    and log J_i = log dy/du at the nodes. Masses h g_i; density in y: g/J."""

    y: jax.Array
    log_g: jax.Array
    log_jac: jax.Array
    h: jax.Array

    @property
    def masses(self):
        return self.h * jnp.exp(self.log_g)

    @property
    def log_density(self):
        return self.log_g - self.log_jac

    @property
    def weights(self):
        """Quadrature weights for integrals in y."""
        return self.h * jnp.exp(self.log_jac)


def uniform_law(block, lo, hi, n: int, log_density) -> Law:
    """The law of density exp(log_density(y)) on n nodes uniform in u from y = lo to y = hi."""
    y, log_jac, h = block.nodes(lo, hi, n)
    return Law(y, log_density(y) + log_jac, log_jac, h)


def _tail_mass(law: Law):
    """The smaller of the masses at or below and at or above each node."""
    m = law.masses
    below = jnp.cumsum(m)
    return jnp.minimum(below, below[-1] - below + m)


def _support(block, mapped, bulk, c2, reference):
    """The new law's support: the mapped bulk widened by the kernel's reach, and `reference`'s."""
    lo = jnp.min(jnp.where(bulk, mapped, jnp.inf))
    hi = jnp.max(jnp.where(bulk, mapped, -jnp.inf))
    lo, hi = block.kernel_support(lo, hi, c2)
    return jnp.minimum(lo, reference[0]), jnp.maximum(hi, reference[1])


def _diffuse(block, masses, mapped, c2, lo, hi, n: int) -> Law:
    """Nyström step: the law of T(y) + C Z on n fresh nodes from lo to hi, the discretised law
    given as point masses at the mapped nodes (one set per branch of the kernel, flattened)."""

    def log_density(z):
        return jnp.log(jnp.exp(block.log_kernel(z[:, None], mapped[None, :], c2)) @ masses)

    return uniform_law(block, lo, hi, n, log_density)


# Central differences of order 8 for the first and second derivatives (Fornberg 1988).
FIRST_DIFFERENCE = (1 / 280, -4 / 105, 1 / 5, -4 / 5, 0.0, 4 / 5, -1 / 5, 4 / 105, -1 / 280)
SECOND_DIFFERENCE = (-1 / 560, 8 / 315, -1 / 5, 8 / 5, -205 / 72, 8 / 5, -1 / 5, 8 / 315, -1 / 560)


def _extrapolation(points: int = 9, beyond: int = 4) -> np.ndarray:
    """Rows j = 0 … beyond−1: f_{−1−j} from f_0 … f_{points−1} by the polynomial through them."""
    x = np.arange(points)
    return np.array(
        [[np.prod([(-1 - j - m) / (k - m) for m in x if m != k]) for k in x] for j in range(beyond)]
    )


EXTRAPOLATION = _extrapolation()


def _derivatives(f, h):
    """First and second derivatives of f on a uniform grid of spacing h, by the central
    differences of order 8, with four values beyond each end extrapolated by the polynomial
    through the last nine. The order matters: the heat flow differentiates log-densities such
    as log cosh(k y) between two modes, whose derivatives grow like k^j, with few nodes per 1/k.
    (Written as sums of shifted slices, which XLA compiles far faster than small products.)"""
    n = f.shape[0]
    head = jnp.sum(EXTRAPOLATION * f[:9], axis=1)[::-1]
    tail = jnp.sum(EXTRAPOLATION * f[::-1][:9], axis=1)
    padded = jnp.concatenate([head, f, tail])
    first = sum(c * padded[j : j + n] for j, c in enumerate(FIRST_DIFFERENCE) if c)
    second = sum(c * padded[j : j + n] for j, c in enumerate(SECOND_DIFFERENCE))
    return first / h, second / h**2


def _heat(block, law: Law, t) -> Law:
    """The law convolved with N(0, t I) in the block's dimension m, moved along the heat
    equation's probability flow: nodes y' = v = −½ ∂_y log f and (log J)' = ∂_y v over a time
    t, f the m-dimensional density (f ∝ g/(J y^{m−1})), masses fixed; HEAT_SUBSTEPS classical
    Runge–Kutta steps, whose error is of order (t ∂_y v)⁵, tiny where this is used (C below a
    grid spacing, so t ∂_y v ~ (spacing/width)²).

    The flow is taken from the derivatives only at resolved nodes: in the bulk, with
    t |∂_y v| <= ¼ and t |v| under a node spacing, and so for the four neighbours each side that
    the differences reach. Elsewhere it is the chord between the resolved nodes around (across an
    empty valley between sharp modes, where log f is not resolved) or the tangent at the last
    one (in the tails, where it is exact for Gaussian tails, and near ρ = 0, where derivatives in
    u divided by J ~ ρ would turn rounding into motion). Those nodes carry no mass that a metric
    sees; this keeps them in order."""
    n = law.y.shape[0]
    index = jnp.arange(n)

    def flow(y, log_jac):
        log_f = law.log_g - log_jac - block.log_shell(y)
        d1, d2 = _derivatives(log_f, law.h)
        jac_slope = _derivatives(log_jac, law.h)[0]
        jac = jnp.exp(log_jac)
        return -0.5 * d1 / jac, -0.5 * (d2 - d1 * jac_slope) / jac**2

    v, dv = flow(law.y, law.log_jac)
    fine = (_tail_mass(law) > TAIL) & (t * jnp.abs(dv) <= 0.25) & (t * jnp.abs(v) <= law.weights)
    padded = jnp.pad(fine, 4)
    fine = jnp.all(jnp.stack([padded[j : j + n] for j in range(9)]), axis=0)
    before = jax.lax.cummax(jnp.where(fine, index, -1))
    after = jax.lax.cummin(jnp.where(fine, index, n), reverse=True)
    a = jnp.where(before >= 0, before, after)
    b = jnp.where(after < n, after, before)
    same = a == b

    def velocity(y, log_jac):
        v, dv = flow(y, log_jac)
        chord = (v[b] - v[a]) / jnp.where(same, 1.0, y[b] - y[a])
        slope = jnp.where(same, dv[a], chord)
        moving = jnp.any(fine)
        return jnp.where(moving, v[a] + slope * (y - y[a]), 0.0), jnp.where(moving, slope, 0.0)

    def shift(state, k, dt):
        return jax.tree.map(lambda a, b: a + dt * b, state, k)

    dt = t / HEAT_SUBSTEPS

    def stage(i, carry):
        """Stage i % 4 of classical Runge–Kutta substep i // 4 (one flat loop: XLA compiles nested
        loops slowly); the last stage of a substep moves the state."""
        state, k, total = carry
        last = i % 4 == 3
        k = velocity(*shift(state, k, jnp.array([0.0, 0.5, 0.5, 1.0])[i % 4] * dt))
        total = shift(total, k, jnp.array([1.0, 2.0, 2.0, 1.0])[i % 4] / 6.0)
        state = jax.tree.map(lambda a, b: jnp.where(last, a + dt * b, a), state, total)
        return state, k, jax.tree.map(lambda a: jnp.where(last, 0.0, a), total)

    zero = (jnp.zeros(n), jnp.zeros(n))
    state = ((law.y, law.log_jac), zero, zero)
    y, log_jac = jax.lax.fori_loop(0, 4 * HEAT_SUBSTEPS, stage, state)[0]
    return Law(y, law.log_g, log_jac, law.h)


def _invert(values, slopes, z):
    """Fractional index x with v(x) = z, for v increasing through `values` at the nodes with
    derivatives `slopes` (per index): the cubic Hermite v between the nodes, inverted by Newton's
    method from the chord's root; beyond the ends, the tangent there."""
    n = values.shape[0]
    j = jnp.clip(jnp.searchsorted(values, z) - 1, 0, n - 2)
    v0, v1, d0, d1 = values[j], values[j + 1], slopes[j], slopes[j + 1]
    gap = v1 - v0
    t = jnp.clip(jnp.where(gap > 0, (z - v0) / jnp.where(gap > 0, gap, 1.0), 0.0), 0.0, 1.0)

    def newton(_, t):
        slope = 6 * t * (1 - t) * gap + (3 * t**2 - 4 * t + 1) * d0 + (3 * t**2 - 2 * t) * d1
        step = (_hermite(v0, v1, d0, d1, t) - z) / jnp.where(slope > 0, slope, 1.0)
        return jnp.clip(t - jnp.where(slope > 0, step, 0.0), 0.0, 1.0)

    t = jax.lax.fori_loop(0, 4, newton, t)
    below = (z - values[0]) / slopes[0]
    above = n - 1 + (z - values[-1]) / slopes[-1]
    return jnp.where(z < values[0], below, jnp.where(z > values[-1], above, j + t))


def _lagrange(f, x, points: int = 8):
    """f at fractional indices x: the polynomial through the `points` nearest nodes inside the
    grid, and beyond it the end value continued by the end difference (a log-density's decay).
    The Lagrange weights
    Π_{m≠k} (x − m)/(k − m) come from prefix and suffix products of the distances."""
    n = f.shape[0]
    inside = jnp.clip(x, 0.0, n - 1.0)
    start = jnp.clip(jnp.floor(inside).astype(jnp.int32) - points // 2 + 1, 0, n - points)
    distance = (inside - start)[:, None] - np.arange(points)
    ones = jnp.ones_like(x)[:, None]
    before = jnp.cumprod(jnp.concatenate([ones, distance[:, :-1]], axis=1), axis=1)
    after = jnp.cumprod(jnp.concatenate([ones, distance[:, :0:-1]], axis=1), axis=1)[:, ::-1]
    k = np.arange(points)
    scale = np.array([math.prod(j - m for m in k if m != j) for j in k], dtype=np.float64)
    window = f[start[:, None] + k]
    total = jnp.sum(before * after / scale * window, axis=1)
    # Beyond the grid, decay at the end slope, or stay flat where rounding tilts the end upwards.
    return (
        total
        + jnp.where(x < 0, x * jnp.maximum(f[1] - f[0], 0.0), 0.0)
        + jnp.where(x > n - 1, (x - n + 1) * jnp.minimum(f[-1] - f[-2], 0.0), 0.0)
    )


def _regrid(block, law: Law, lo, hi, n: int) -> Law:
    """The law on n fresh nodes from lo to hi, log p interpolated in the node index (8-point
    Lagrange: log-densities are nearly quadratic, so this is accurate where interpolating the
    densities themselves would not be)."""

    def log_density(z):
        return _lagrange(law.log_density, _invert(law.y, law.weights, z))

    return uniform_law(block, lo, hi, n, log_density)


def initial_law(block, from_target, s0, n: int) -> Law:
    """q_T's block law (from_target) or N(0, I)'s on n nodes over its support; from_target may be
    traced, so that both starts share one compiled loop."""
    lo, hi = jnp.where(
        from_target,
        jnp.stack(block.reference_support(s0)),
        jnp.stack(block.kernel_support(0.0, 0.0, 1.0)),
    )

    def log_density(y):
        return jnp.where(from_target, block.log_reference(y, s0), block.log_standard(y))

    return uniform_law(block, lo, hi, n, log_density)


class OneStep(NamedTuple):
    """The kernel of every one-step rule y' = A y + B ŝ(y, s) + C z: one branch, (A, B, C)
    traced, so that all of them share one compiled loop."""

    modes = ("push", "semi_lagrangian", "nystrom")  # C = 0 (DDIM), C below the grid, else

    def __call__(self, block, y, st, coefficients):
        A, B, C = coefficients
        return (A * y + B * block.drift(y, st.s))[None], jnp.ones(1), C


class MultiStage(NamedTuple):
    """The kernel of a multi-stage rule, from its own step function on one coordinate (a signed
    multiple of a block's unit vector): y' given y is Σ_j w_j N(T_j(y), C²), the branches T_j the
    step at the noise nodes `noise_nodes(st)` (none for a deterministic rule: one branch, C = 0).
    Both are static: the kernel compiles once per rule and node set."""

    sampler: object
    noise_nodes: object

    @property
    def modes(self):
        """The step kinds it can take (so that no other is compiled): pushes for a deterministic
        rule, Nyström steps otherwise (several branches cannot be pushed)."""
        return ("push",) if self.sampler.n_noise == 0 else ("nystrom",)

    def __call__(self, block, y, st, coefficients):
        nodes, weights, gaussian = self.noise_nodes(st)

        def branch(noise):
            return self.sampler.step(y, block.drift, st, noise[:, None] * jnp.ones_like(y))

        # The output is affine in the direction `gaussian` of the noise: C is its derivative.
        C = jnp.abs(jax.jvp(branch, (nodes[0],), (gaussian,))[1][0])
        return jax.vmap(branch)(nodes), weights, C


def _deterministic(st):
    return jnp.zeros((1, 0)), jnp.ones(1), jnp.zeros(0)


def sra1_nodes(count: int):
    """SRA1's noise nodes. Its noise (ΔW, ΔZ)/√h = (z1, z2), rotated to (ζ, e) by
    z1 = (√3 ζ + e)/2, z2 = (ζ − √3 e)/2, puts all of the second stage's noise in
    χ = (ΔW + ΔZ/√3)/2 = √h ζ/√3, and given ζ the output is Gaussian, affine in e with slope
    g √h/2 (from ΔW): the kernel is a Gauss–Hermite sum over ζ (`count` nodes, those of weight
    under 1e-18 dropped) of Gaussian kernels."""
    zeta, w = np.polynomial.hermite_e.hermegauss(count)
    keep = w / math.sqrt(2.0 * math.pi) > 1e-18
    zeta, w = zeta[keep], w[keep] / w[keep].sum()
    rotation = np.array([[math.sqrt(3.0), 1.0], [1.0, -math.sqrt(3.0)]]) / 2.0
    nodes = jnp.asarray(np.stack([zeta, np.zeros_like(zeta)], axis=1) @ rotation.T)
    return lambda st: (nodes, jnp.asarray(w), jnp.asarray(rotation[:, 1]))


SRA1_NODES = 32  # W2 moves by about 1e-9 relative at twice as many, far under the grid's floor
NOISE_NODES = {
    "pf_euler": _deterministic,
    "pf_heun": _deterministic,
    "sra1": sra1_nodes(SRA1_NODES),
}
LINE_ONLY = ("sra1",)  # its second stage's noise is m-dimensional in a radial block


def kernel(sampler):
    """The quadrature kernel of `sampler`; ValueError if it has none."""
    if sampler.coefficients is not None:
        return OneStep()
    if sampler.name in NOISE_NODES:
        return MultiStage(sampler, NOISE_NODES[sampler.name])
    raise ValueError(
        f"quadrature: one-step samplers, {', '.join(NOISE_NODES)} only (got {sampler.name})"
    )


@partial(jax.jit, static_argnames=("step_kernel", "n"))
def _propagate(block, step_kernel, steps, coefficients, s, from_target, n: int):
    """Scan over the steps: a Nyström step when the kernel is resolved, or T folds; else the
    semi-Lagrangian step (push-forward, regrid, and the heat flow if C > 0), for one branch. See
    the module docstring. Returns the law, its mass after each step and whether each step was
    valid: semi-Lagrangian nodes in order, and a multi-branch kernel resolved."""

    def body(law, xs):
        st, coef = xs

        def step_map(y):
            mapped, weights, C = step_kernel(block, y, st, coef)
            return block.fold(mapped), (weights, C)

        mapped, slope, (weights, C) = jax.jvp(
            step_map, (law.y,), (jnp.ones_like(law.y),), has_aux=True
        )
        bulk = _tail_mass(law) > TAIL
        increasing = jnp.all(jnp.where(bulk, slope > 0, True))
        # kernel width / spacing of the mapped nodes, and the trapezoid rule's aliasing error
        # 2 exp(−2π² w²/h²) for a Gaussian feature of width w, weighted by the nodes' masses.
        resolution = jnp.where(bulk, C / (jnp.abs(slope) * law.weights), jnp.inf)
        aliasing = jnp.sum(
            weights[:, None] * law.masses * jnp.exp(-2.0 * jnp.pi**2 * resolution**2)
        )
        coarse = (aliasing > ALIASING) & (jnp.max(jnp.where(bulk, resolution, 0.0)) < RESOLVED)
        nystrom = (C > 0) & ~(coarse & increasing)

        reach = jnp.where(weights[:, None] > 0, mapped, mapped[:1])
        lo, hi = _support(block, reach, bulk, C**2, block.reference_support(st.s_next))
        pushed = Law(mapped[0], law.log_g, law.log_jac + jnp.log(slope[0]), law.h)

        def semi_lagrangian():
            fresh = _regrid(block, pushed, lo, hi, n)
            return _heat(block, fresh, C**2)

        masses = (weights[:, None] * law.masses).ravel()
        kinds = {
            "push": lambda: pushed,
            "semi_lagrangian": semi_lagrangian,
            "nystrom": lambda: _diffuse(block, masses, mapped.ravel(), C**2, lo, hi, n),
        }
        if len(step_kernel.modes) == 1:
            law = kinds[step_kernel.modes[0]]()
        else:
            kind = jnp.where(C > 0, jnp.where(nystrom, 2, 1), 0)
            law = jax.lax.switch(kind, [kinds[m] for m in step_kernel.modes])
        # One branch may be pushed; several need a resolved Nyström step.
        single = weights.shape[0] == 1
        ordered = (nystrom & (single | ~coarse)) | (
            single & increasing & jnp.all(jnp.diff(law.y) > 0)
        )
        return law, (jnp.sum(law.masses), ordered, C)

    law, (mass, ordered, C) = jax.lax.scan(
        body, initial_law(block, from_target, s[0], n), (steps, coefficients)
    )
    if s.shape[0] > 1:
        # After pushes alone (C = 0) the nodes have thinned where T stretches (the valley
        # between two modes): the output goes onto a fresh grid over it and q_δ for the metrics.
        bulk = _tail_mass(law) > TAIL
        lo, hi = _support(block, law.y[None], bulk, 0.0, block.reference_support(s[-1]))
        law = jax.lax.cond(C[-1] > 0, lambda: law, lambda: _regrid(block, law, lo, hi, n))
        mass = jnp.append(mass, jnp.sum(law.masses))
    return law, mass, ordered


def propagate(sampler, block, grid, init: str = "standard", n: int = DEFAULT_GRID_SIZE):
    """The sampler's output law on one block and the largest |mass − 1| after any step;
    FloatingPointError if a semi-Lagrangian step (C = 0, or an unresolved kernel) folded the law
    or left its nodes out of order, or a multi-branch kernel was narrower than the grid."""
    if init not in INITS:
        raise ValueError(f"quadrature: init is one of {', '.join(INITS)} (got {init!r})")
    steps = jax.tree.map(jnp.asarray, grid.steps())
    step_kernel = kernel(sampler)
    if sampler.coefficients is not None:
        coefficients = jnp.stack(jax.vmap(sampler.coefficients)(steps), axis=1)
    else:
        coefficients = jnp.zeros((grid.n_steps, 0))
    s = jnp.asarray(grid.s)
    law, mass, ordered = _propagate(
        block, step_kernel, steps, coefficients, s, jnp.asarray(init == "target"), n
    )
    if not bool(jnp.all(ordered)):
        raise FloatingPointError(
            "quadrature: a step was not resolved (a semi-Lagrangian step folded the law, or a "
            "multi-branch kernel is narrower than the grid)"
        )
    return law, float(jnp.max(jnp.abs(mass - 1.0), initial=0.0))


def _cumulative(f, h):
    """∫ f du from the first node to each node, by the sixth-order rule (the quintic through six
    nodes) ∫_{u_k}^{u_{k+1}} f ≈ h/1440 (11 f_{k−2} − 93 f_{k−1} + 802 f_k + 802 f_{k+1}
    − 93 f_{k+2} + 11 f_{k+3}), with f = 0 off the grid (the grids end where the mass does)."""
    p = jnp.pad(f, 2)
    n = f.shape[0]
    weights = (11.0, -93.0, 802.0, 802.0, -93.0, 11.0)
    pieces = sum(w * p[j : j + n - 1] for j, w in enumerate(weights)) * h / 1440.0
    return jnp.concatenate([jnp.zeros(1), jnp.cumsum(pieces)])


def _hermite(y0, y1, d0, d1, t):
    """The cubic on t ∈ [0, 1] with values y0, y1 and slopes d0, d1 at the ends."""
    return (
        (1.0 + 2.0 * t) * (1.0 - t) ** 2 * y0
        + t * (1.0 - t) ** 2 * d0
        + t**2 * (3.0 - 2.0 * t) * y1
        + t**2 * (t - 1.0) * d1
    )


def _at_index(law: Law, index):
    """y at a fractional node index, by cubic Hermite interpolation (slopes h J = dy/di)."""
    j = jnp.clip(jnp.floor(index).astype(jnp.int32), 0, law.y.shape[0] - 2)
    slope = law.weights
    return _hermite(law.y[j], law.y[j + 1], slope[j], slope[j + 1], index - j)


def _bregman(log_a, log_b):
    """a log(a/b) − a + b >= 0, as a (e^d − 1 − d) with d = log(b/a) so that it keeps its digits
    when b ≈ a; b where a = 0."""
    a = jnp.exp(log_a)
    d = jnp.where(a > 0, log_b - log_a, 0.0)
    small = a * (jnp.expm1(jnp.minimum(d, 1.0)) - d)
    return jnp.where(
        a > 0, jnp.where(d < 1.0, small, jnp.exp(log_b) - a * (1.0 + d)), jnp.exp(log_b)
    )


def _matching_index(g, gq, h):
    """Fractional node index where q's CDF equals p's at each node (densities g, gq in u), from
    the lower tail below the median and from the upper one above it, so that both tails keep
    their relative precision (a CDF rounds to 1 in the upper tail)."""

    def from_below(g, gq):
        cdf_p, cdf_q = _cumulative(g, h), _cumulative(gq, h)
        index = _invert(cdf_q / cdf_q[-1], gq * h / cdf_q[-1], cdf_p / cdf_p[-1])
        return jnp.clip(index, 0.0, g.shape[0] - 1.0), cdf_p

    lower, cdf_p = from_below(g, gq)
    upper = g.shape[0] - 1.0 - from_below(g[::-1], gq[::-1])[0][::-1]
    return jnp.where(cdf_p <= 0.5 * cdf_p[-1], lower, upper)


def _w2_squared(law: Law, log_q):
    """∫_0^1 (F_p^{−1} − F_q^{−1})² dv as Σ h g_i (y_i − F_q^{−1}(F_p(y_i)))², both CDFs on the
    nodes (normalised to end at 1)."""
    index = _matching_index(jnp.exp(law.log_g), jnp.exp(log_q + law.log_jac), law.h)
    return jnp.sum(law.masses * (law.y - _at_index(law, index)) ** 2)


def _w2_squared_atoms(law: Law, positions, weights):
    """W2² against atoms: the quantile of q_0 is a step function."""
    order = jnp.argsort(positions)
    cdf_p = _cumulative(jnp.exp(law.log_g), law.h)
    k = jnp.searchsorted(jnp.cumsum(weights[order]), cdf_p / cdf_p[-1])
    quantile = positions[order][jnp.clip(k, 0, positions.shape[0] - 1)]
    return jnp.sum(law.masses * (law.y - quantile) ** 2)


class BlockValues(NamedTuple):
    kl: jax.Array
    kl_reverse: jax.Array
    h2: jax.Array  # squared Hellinger distance, 1 − Bhattacharyya
    tv: jax.Array
    w2_squared: jax.Array
    coverage: jax.Array  # q_δ's mass on the output nodes, 1 up to the grid


@jax.jit
def _block_values(block, law: Law, delta) -> BlockValues:
    log_q, log_p, w = block.log_reference(law.y, delta), law.log_density, law.weights
    p, q = jnp.exp(log_p), jnp.exp(log_q)
    return BlockValues(
        jnp.sum(w * _bregman(log_q, log_p)),
        jnp.sum(w * _bregman(log_p, log_q)),
        0.5 * jnp.sum(w * (jnp.sqrt(p) - jnp.sqrt(q)) ** 2),
        0.5 * jnp.sum(w * jnp.abs(p - q)),
        _w2_squared(law, log_q),
        jnp.sum(w * q),
    )


def block_metrics(block, law: Law, delta) -> BlockValues:
    """Distances between q_δ and the output `law` of one block (module docstring)."""
    if block.singular(delta):
        w2_squared = _w2_squared_atoms(law, *block.atoms())
        return BlockValues(jnp.inf, jnp.inf, 1.0, 1.0, w2_squared, 1.0)
    return _block_values(block, law, delta)


class Complement(NamedTuple):
    """One δ₀ coordinate: output N(0, v_out), target N(0, v_target); `dims` of them."""

    dims: int
    v_out: jax.Array
    v_target: jax.Array


class ComplementValues(NamedTuple):
    kl: jax.Array
    kl_reverse: jax.Array
    w2_squared: jax.Array
    log_bc: jax.Array  # log of the Bhattacharyya coefficient


def _complement_values(comp: Complement) -> ComplementValues:
    """The complement's share of each metric: dims times one coordinate's (none without dims:
    0 · inf would be NaN at δ = 0)."""
    if comp.dims == 0:
        return ComplementValues(0.0, 0.0, 0.0, 0.0)
    out, tgt = (jnp.zeros(1), comp.v_out[None]), (jnp.zeros(1), comp.v_target[None])
    return ComplementValues(
        comp.dims * exact.kl_gaussian(*tgt, *out),
        comp.dims * exact.kl_gaussian(*out, *tgt),
        comp.dims * exact.w2_gaussian(*out, *tgt) ** 2,
        comp.dims * jnp.log1p(-(exact.hellinger_gaussian(*out, *tgt) ** 2)),
    )


@partial(jax.jit, static_argnames=("sampler", "init"))
def _point_mass_variance(sampler, t, s, beta, init: str):
    """The output variance of one δ₀ coordinate, by exact.output_moments (compiled once per
    sampler and init, the grid traced)."""
    point = Gaussian(jnp.zeros(1), jnp.zeros(1))
    return exact.output_moments(sampler, point, Grid(t, s, beta), init)[1][0]


def complement(sampler, grid, init: str, dims: int, at) -> Complement:
    """The Gaussian δ₀ directions, exact by metrics/exact.py (eigenvalue 0): N(0, v_out) against
    N(0, σ_at²), at = δ or 0 (the data: a point mass)."""
    v_out = _point_mass_variance(sampler, *(jnp.asarray(a) for a in grid), init)
    return Complement(dims, v_out, sigma2(jnp.asarray(at)))


@partial(jax.jit, static_argnames="count")
def _tv_monte_carlo(block, law: Law, delta, count: int, complement_log_ratio, key):
    """E_q (1 − Π r)_+ and its standard error: each of the `count` blocks drawn from q's
    discretisation on the nodes (weights h J q), by inversion so that runs on different grids
    share their random numbers, plus the complement's log-ratio draws."""
    log_q = block.log_reference(law.y, delta)
    weights = law.weights * jnp.exp(log_q)
    cdf = jnp.cumsum(weights) / jnp.sum(weights)
    log_r = law.log_density - log_q
    shape = complement_log_ratio.shape

    def add_block(i, total):
        u = jax.random.uniform(jax.random.fold_in(key, i), shape)
        return total + log_r[jnp.clip(jnp.searchsorted(cdf, u), 0, cdf.shape[0] - 1)]

    gap = jnp.maximum(-jnp.expm1(jax.lax.fori_loop(0, count, add_block, complement_log_ratio)), 0)
    return jnp.mean(gap), jnp.std(gap, ddof=1) / jnp.sqrt(shape[0])


def complement_log_ratio(comp: Complement, key, samples: int = TV_SAMPLES):
    """log(p/q) of the complement at draws from q: −(c/2) log(v_out/v_target)
    − ½ (v_target/v_out − 1) χ²_c, one χ² draw for the c coordinates."""
    if comp.dims == 0:
        return jnp.zeros(samples)
    chi2 = 2.0 * jax.random.gamma(key, 0.5 * comp.dims, (samples,))
    ratio = comp.v_target / comp.v_out
    return 0.5 * comp.dims * jnp.log(ratio) - 0.5 * (ratio - 1.0) * chi2


def _measure(sampler, blocks: Blocks, comp: Complement, grid, metrics, init, at, n, key, check):
    """{metric: (value, stderr)} against q_at at grid size n; with `check`, FloatingPointError
    unless the mass stayed 1 and q_at's mass on the output nodes is 1, within MASS_TOLERANCE."""
    block, count, c = blocks.block, blocks.count, comp.dims
    delta = at
    law, defect = propagate(sampler, block, grid, init, n)
    b = block_metrics(block, law, delta)
    if check and not defect <= MASS_TOLERANCE:
        raise FloatingPointError(f"quadrature: probability mass off by {defect:.2g} (n = {n})")
    if check and not abs(float(b.coverage) - 1.0) <= MASS_TOLERANCE:
        raise FloatingPointError(f"quadrature: the output grid holds {b.coverage:.10g} of q_{at:g}")
    extra = _complement_values(comp)
    values = {
        "kl": (count * b.kl + extra.kl, 0.0),
        "kl_reverse": (count * b.kl_reverse + extra.kl_reverse, 0.0),
        "w2": (jnp.sqrt(count * b.w2_squared + extra.w2_squared), 0.0),
        "hellinger": (jnp.sqrt(-jnp.expm1(count * jnp.log1p(-b.h2) + extra.log_bc)), 0.0),
    }
    if "tv" in metrics:
        if block.singular(delta) or (c and sigma2(delta) == 0):
            values["tv"] = (1.0, 0.0)
        elif count == 1 and c == 0:
            values["tv"] = (b.tv, 0.0)
        else:
            key_blocks, key_complement = jax.random.split(key)
            start = complement_log_ratio(comp, key_complement)
            values["tv"] = _tv_monte_carlo(block, law, delta, count, start, key_blocks)
    return {m: (float(values[m][0]), float(values[m][1])) for m in metrics}


def _floor(fine: float, coarse: float) -> float:
    """|fine − coarse|, 0 when equal (both infinite included), inf when the coarse grid failed."""
    if fine == coarse:
        return 0.0
    difference = abs(fine - coarse)
    return difference if math.isfinite(difference) else math.inf


def quadrature(sampler, target, grid, metrics, init="standard", grid_size=None, key=None, at=None):
    """Metrics between q_at (at = δ, the default, or 0: the data) and the sampler's output on a
    `product`, `torus` or `sphere` target (module docstring): {metric: (value, stderr, floor)},
    metrics from METRICS. Against the data the output grid is still the one that covers q_δ,
    which covers q_0 for a small δ (a miss is a failed check).

    The floor is |value(n) − value(n/2)|, n = grid_size, and inf
    when the run on n/2 points breaks down; stderr is 0 except for a Monte Carlo tv
    (TV_SAMPLES draws from `key`, default PRNGKey(0), the same at both grid sizes). Without a
    grid_size, n is DEFAULT_GRID_SIZE, doubled while the checks fail (a law sharper than the
    grid resolves, e.g. atoms at small δ), REFINEMENTS times at most; a refined n is then
    paired with 2n (whose value is reported) rather than with the failed n/2."""
    unknown = set(metrics) - set(METRICS)
    if unknown:
        raise ValueError(f"quadrature: metrics {', '.join(METRICS)} only (got {sorted(unknown)})")
    kernel(sampler)
    if sampler.name in LINE_ONLY and target.name != "product":
        raise ValueError(f"quadrature: {sampler.name} on product targets only (got {target.name})")
    key = jax.random.PRNGKey(0) if key is None else key
    blocks = decompose(target)
    at = grid.s[-1] if at is None else at
    comp = complement(sampler, grid, init, target.d - blocks.span, at)
    measure = partial(_measure, sampler, blocks, comp, grid, metrics, init, at, key=key)
    sizes = [DEFAULT_GRID_SIZE * 2**j for j in range(REFINEMENTS + 1)]
    for n in [grid_size] if grid_size is not None else sizes:
        try:
            fine = measure(n=n, check=True)
            break
        except FloatingPointError:
            if grid_size is not None or n == sizes[-1]:
                raise
    if n != sizes[0] and grid_size is None:
        # n/2 failed its checks: the pair is (2n, n) instead, the value the one at 2n.
        coarse, fine = fine, measure(n=2 * n, check=True)
    else:
        try:
            coarse = measure(n=n // 2, check=False)
        except FloatingPointError:
            coarse = {m: (math.nan, math.nan) for m in metrics}
    return {m: (*fine[m], _floor(fine[m][0], coarse[m][0])) for m in metrics}
