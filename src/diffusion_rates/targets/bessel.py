"""Modified Bessel functions of the first kind for the noised-manifold targets, in pure JAX.

The noised uniform law on a round sphere S^{n-1}_r ⊂ R^n has a density with the factor
E_U exp(κ e·U) = Γ(ν+1) (2/κ)^ν I_ν(κ), ν = n/2 - 1, and its score and posterior mean with the
ratio R_ν(κ) = I_{ν+1}(κ)/I_ν(κ). So the targets need, for orders ν >= -1/2 and 0 <= κ <= 1e6:

    log ĩ_ν(κ) = log[Γ(ν+1) (2/κ)^ν I_ν(κ) e^{-κ}]   (`log_ive_normalised`, = 0 at κ = 0),
    R_ν(κ) = I_{ν+1}(κ)/I_ν(κ)                        (`bessel_ratio`),

and log[I_ν(κ) e^{-κ}] (`log_ive`, scipy's `ive` in logs). The factor e^{-κ} keeps the values of
moderate size (log ĩ_ν ≈ -(ν+½) log κ for large κ), so the absolute error of the logs, which is the
relative error of I_ν, stays near 1e-13 (1e-12 where the log itself is of size 1e4, as at ν = 500,
κ = 1e-3); R_ν agrees with its power series to 3e-15 relative for κ <= 300 and with scipy to 1e-13
(scipy's own accuracy) above, on ν ∈ [-1/2, 500], κ ∈ [0, 1e6].

Method (as Amos's algorithm for scipy's `iv` combines a uniform expansion with recurrences):
1. At a high order M = ν + m >= 30 (m the least integer >= 0 that gets there), Debye's uniform
   expansion (DLMF 10.41.3), I_M(Mz) ~ e^{Mη} / ((2πM)^{1/2} (1+z²)^{1/4}) Σ_k u_k(t)/M^k with
   t = (1+z²)^{-1/2}, η = √(1+z²) + log(z / (1 + √(1+z²))), is uniform in z ∈ [0, ∞): with 13 terms
   its error is of the order of the first omitted one, max|u_13|/30^13 ≈ 3e-18. It gives log ĩ_M,
   and R_M from log(ĩ_{M+1}/ĩ_M) written as differences that do not cancel.
2. Down to ν by the three-term recurrence I_{μ-1} = I_{μ+1} + (2μ/κ) I_μ, run on the ratio,

       R_μ = κ / (2(μ+1) + κ R_{μ+1}),   log ĩ_μ = log ĩ_{μ+1} + log1p(κ R_{μ+1} / (2(μ+1))),

   which is stable downwards (I is the dominant solution there; each step multiplies the relative
   error of R by R_μ R_{μ+1} < 1) and has no 0/0 at κ = 0.

The derivative d/dκ log ĩ_ν(κ) = R_ν(κ) - 1 (from I_ν' = I_{ν+1} + (ν/κ) I_ν) is given to JAX as
the custom JVP of `log_ive_normalised`, so jax.grad of a log-density built on it is the analytic
score (and d/dκ log I_ν = R_ν + ν/κ follows for `log_ive`).

The order ν is a Python number: it fixes m and the series coefficients when the function is traced.
"""

from __future__ import annotations

import math
from fractions import Fraction
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

DEBYE_MIN_ORDER = 30.0  # the recurrence starts at the first order >= this one
DEBYE_TERMS = 13  # u_0, ..., u_12


def debye_polynomials(n_terms: int) -> list[list[Fraction]]:
    """Coefficients (increasing powers of t) of Debye's u_k(t), k < n_terms, in exact rationals
    (DLMF 10.41.10): u_0 = 1, u_{k+1}(t) = ½ t²(1 - t²) u_k'(t) + ⅛ ∫_0^t (1 - 5τ²) u_k(τ) dτ."""
    polys = [[Fraction(1)]]
    for _ in range(n_terms - 1):
        nxt = [Fraction(0)] * (len(polys[-1]) + 3)
        for i, c in enumerate(polys[-1]):
            # ½ t²(1 - t²) · i c t^{i-1} and ⅛ ∫_0^t (1 - 5τ²) c τ^i dτ
            nxt[i + 1] += Fraction(i, 2) * c + c / (8 * (i + 1))
            nxt[i + 3] -= Fraction(i, 2) * c + 5 * c / (8 * (i + 3))
        polys.append(nxt)
    return polys


_DEBYE = debye_polynomials(DEBYE_TERMS)


def _debye_series_coefficients(order: float) -> np.ndarray:
    """Coefficients b_i of Σ_{k>=1} u_k(t)/M^k = Σ_i b_i t^i at M = order, highest power first;
    u_k(0) = 0 for k >= 1, so b_0 = 0 and the sum is S - 1."""
    b = np.zeros(len(_DEBYE[-1]))
    for k, poly in enumerate(_DEBYE[1:], start=1):
        b[: len(poly)] += np.array([float(c) for c in poly]) / order**k
    return b[::-1]


def _stirling_remainder(order: float) -> float:
    """log Γ(M+1) - (M log M - M + ½ log 2πM) by its Bernoulli series Σ_j B_2j/(2j(2j-1) M^{2j-1})
    (DLMF 5.11.1): to double precision for M >= 30, without the cancellation of the difference."""
    bernoulli = (1 / 6, -1 / 30, 1 / 42, -1 / 30, 5 / 66, -691 / 2730)
    return sum(
        b / ((2 * j) * (2 * j - 1) * order ** (2 * j - 1)) for j, b in enumerate(bernoulli, 1)
    )


def _bracket(z, q):
    """1/(q+z) - 1 - log((1+q)/2) for q = √(1+z²), without cancellation (q - 1 = z²/(1+q))."""
    return 1.0 / (q + z) - 1.0 - jnp.log1p(0.5 * z**2 / (1.0 + q))


def _log_debye_series(order: float, t):
    """log S, S = Σ_k u_k(t)/M^k at M = order (Horner, unrolled: the coefficients are constants)."""
    series = jnp.zeros_like(t)
    for b in _debye_series_coefficients(order):
        series = series * t + b
    return jnp.log1p(series)


def _debye_log_ive_normalised(order: float, x):
    """log ĩ_M(x) by Debye's expansion. With z = x/M, q = √(1+z²), t = 1/q it reads

        log ĩ_M = M [1/(q+z) - 1 - log((1+q)/2)] - ¼ log(1+z²) + (Stirling remainder of M) + log S:

    the terms of size M log M in log Γ(M+1) and M η - x - M log(x/2) cancel analytically
    (q - z = 1/(q+z)), so nothing large is subtracted."""
    z = x / order
    q = jnp.sqrt(1.0 + z**2)
    return (
        order * _bracket(z, q)
        - 0.25 * jnp.log1p(z**2)
        + _stirling_remainder(order)
        + _log_debye_series(order, 1.0 / q)
    )


def _debye_log_ratio(order: float, x):
    """log(ĩ_{M+1}(x)/ĩ_M(x)) by Debye's expansion, term by term as differences formed without
    cancellation: each log ĩ is of size M log z (3000 at M = 500), their difference of size log z.
    With z' = x/(M+1), δz = z' - z = -z'/M and δq = q' - q = δz (z' + z)/(q' + q),

        (M+1) β(z') - M β(z) = β(z') + M [-(δq + δz)/((q+z)(q'+z')) - log1p(δq/(1+q))],

    β the bracket of `_debye_log_ive_normalised`, and
    log(1+z'²) - log(1+z²) = log1p(δz(z'+z)/(1+z²))."""
    z, z1 = x / order, x / (order + 1.0)
    q, q1 = jnp.sqrt(1.0 + z**2), jnp.sqrt(1.0 + z1**2)
    dz = -z1 / order
    dq = dz * (z1 + z) / (q1 + q)
    d_bracket = -(dq + dz) / ((q + z) * (q1 + z1)) - jnp.log1p(dq / (1.0 + q))
    return (
        _bracket(z1, q1)
        + order * d_bracket
        - 0.25 * jnp.log1p(dz * (z1 + z) / (1.0 + z**2))
        + (_stirling_remainder(order + 1.0) - _stirling_remainder(order))
        + _log_debye_series(order + 1.0, 1.0 / q1)
        - _log_debye_series(order, 1.0 / q)
    )


# Compiled per order, so that eager calls (and the targets' methods outside jit) run one kernel.
@partial(jax.jit, static_argnums=0)
def _log_ive_normalised_and_ratio(nu: float, x):
    """(log ĩ_ν(x), R_ν(x)): Debye's expansion at the orders M, M+1 with M = ν + m >= 30, then m
    steps of the downward recurrence (module docstring)."""
    if nu < -1.0:
        raise ValueError(f"Bessel order must be > -1 (got {nu})")
    steps = max(0, math.ceil(DEBYE_MIN_ORDER - nu))
    top = nu + steps
    log_top = _debye_log_ive_normalised(top, x)
    # ĩ_{M+1}/ĩ_M = 2(M+1) R_M / x: the prefactor x makes R_M(0) = 0 exactly.
    ratio = x / (2.0 * (top + 1.0)) * jnp.exp(_debye_log_ratio(top, x))

    def down(j, carry):
        log_i, r = carry
        mu = top - 1.0 - j
        return log_i + jnp.log1p(x * r / (2.0 * (mu + 1.0))), x / (2.0 * (mu + 1.0) + x * r)

    return jax.lax.fori_loop(0, steps, down, (log_top, ratio))


@partial(jax.custom_jvp, nondiff_argnums=(0,))
def log_ive_normalised(nu: float, x):
    """log ĩ_ν(x) = log[Γ(ν+1) (2/x)^ν I_ν(x) e^{-x}] = log[₀F₁(; ν+1; x²/4) e^{-x}], x >= 0.

    Equal to 0 at x = 0 and ≈ -(ν+½) log x + const as x → ∞; its x-derivative is R_ν(x) - 1."""
    return _log_ive_normalised_and_ratio(nu, x)[0]


@log_ive_normalised.defjvp
def _log_ive_normalised_jvp(nu, primals, tangents):
    (x,), (dx,) = primals, tangents
    log_i, ratio = _log_ive_normalised_and_ratio(nu, x)
    return log_i, (ratio - 1.0) * dx


def bessel_ratio(nu: float, x):
    """R_ν(x) = I_{ν+1}(x)/I_ν(x), x >= 0: 0 at x = 0, ≈ x/(2(ν+1)) for small x, → 1 as x → ∞."""
    return _log_ive_normalised_and_ratio(nu, x)[1]


def log_ive(nu: float, x):
    """log[I_ν(x) e^{-x}] (the log of scipy.special.ive), x >= 0; its x-derivative is
    R_ν(x) + ν/x - 1. At x = 0 it is -inf for ν > 0, 0 for ν = 0 and +inf for ν < 0."""
    log_i = log_ive_normalised(nu, x)
    if nu == 0:  # 0 · log 0 would be NaN; I_0(0) = 1
        return log_i
    return log_i + nu * jnp.log(0.5 * x) - math.lgamma(nu + 1.0)
