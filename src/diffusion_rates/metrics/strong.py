"""Strong (pathwise) error: the sampler's output against a fine reference on the same Brownian path.

docs/estimators.md. `strong` = sqrt(E‖Y_N − Y_N^ref‖²), where Y_N is the sampler's
output on the run's grid and Y_N^ref a reference solution of the same reverse SDE

    dY = (Y + 2ŝ(Y, T − τ)) dτ + √2 dW        (OU clock, reverse time τ = T − s)

driven by the same Brownian path W and started from the same y0. This is what strong-order bounds
control (the `ptw` claim), and an upper bound on W2 between the two laws by coupling.

Nested grids. Each coarse step [s, s − γ] is split into M equal sub-steps of h = γ/M in the OU
clock. Sub-step j (local reverse time u ∈ [jh, (j+1)h]) draws two standard normals (z1, z2) and
sets its Brownian increment and its time-integrated increment

    ΔW_j = √h z1,   I_j = ∫_{jh}^{(j+1)h} (W_u − W_{jh}) du = h (ΔW_j + √h z2/√3)/2,

the pair of Rößler's SRA1 (Var ΔW_j = h, Cov = h²/2, Var I_j = h³/3). The noise of coarse step k
is drawn from fold_in(key, k), the normals of sub-steps 2i and 2i + 1 together from
fold_in(fold_in(key, k), i) by `noise.normal` (row = path): reproducible. Zero-length coarse
steps (padded grids) are skipped.

Reference: `sra1` (strong order 1.5 for additive noise) on the fine grid, M = M_REF = 32
sub-steps per coarse step, fed (ΔW_j, I_j). Its floor is the same RMS distance between the
reference at M and at M/2 (nested again: pairs of sub-steps, assembled as below). With the
reference's error ∝ (step)^p, p = 1.5 … 2, that distance is (2^p − 1) ≈ 1.8 … 3 times the
reference's own error at M: an honest (conservative) floor, with no extra sampler runs.

Coarse increments are sums of fine ones. Over a coarse step of length γ = Mh:

    ΔW = Σ_j ΔW_j,
    I_(1,0) = ∫_0^γ (W_u − W_0) du = Σ_j [I_j + h (W_{jh} − W_0)],  W_{jh} − W_0 = Σ_{i<j} ΔW_i,

(each sub-step's integral of W − W_0 is its own I_j plus h times the displacement already
accumulated at its start), so that Var ΔW = γ, Cov(ΔW, I) = γ²/2, Var I = γ³/3 (tests check this
by Monte Carlo). The same rule with M = 2 gives the M/2 reference's increments.

What each coarse sampler gets as its standard normal noise (every choice exact in law, so the
coarse output has exactly the sampler's law):
- `em`: y' = A y + B ŝ + C z with z = ΔW/√γ. In the OU clock C z = √2 ΔW, the Euler–Maruyama
  increment. On a VP clock, em steps by γ_e = (t_k − t_{k+1}) β(t_k) ≠ γ and C z = √(2γ_e/γ) ΔW:
  the process-clock increment √β(t_k)·ΔW_t is √(γ_e/γ)·ΔW up to O(γ^{3/2}) per step, which is
  within em's own order.
- `ei`: the exponential integrator is the exact solution of dY = (Y + 2ŝ(y_k, s)) dτ + √2 dW over
  τ ∈ [0, γ] (score frozen), by variation of constants

      Y(γ) = e^γ y + 2(e^γ − 1) ŝ(y, s) + √2 ∫_0^γ e^{γ−u} dW_u,

  so its noise term C z (C² = e^{2γ} − 1 = 2∫_0^γ e^{2(γ−u)} du) must be √2 ∫_0^γ e^{γ−u} dW_u.
  On sub-step j, e^{γ−u} = e^{γ−jh} e^{−v} (v = u − jh) and ∫_0^h e^{−v} dW_v = ∫_0^h (1 − v) dW_v
  + O(h^{5/2}) = (1 − h) ΔW_j + I_j + O(h^{5/2}), since ∫_0^h v dW_v = h ΔW_j − I_j. Hence

      E = Σ_j e^{γ−jh} ((1 − h) ΔW_j + I_j),   Var E = Σ_j e^{2(γ−jh)} (h − h² + h³/3),

  and z = E/√Var E (exactly N(0, 1); C z = √2 ∫ e^{γ−u} dW up to a residual of RMS O(h²)·e^γ√γ per
  coarse step, far below ei's own error).
- `sra1`: noise[0] = ΔW/√γ and noise[1] = ΔZ/√γ with ΔZ = √3 (2 I_(1,0)/γ − ΔW), the inverse of
  the sampler's χ = (ΔW + ΔZ/√3)/2 = I_(1,0)/γ: (ΔW, ΔZ) are then independent N(0, γ).

Refused: `ddpm`, `ddpm_posterior` (their C² ≠ e^{2γ} − 1: no noise term of theirs is the
integral of this SDE's noise; a coupling could be defined but would be a choice, not a strong
error) and the deterministic `ddim`, `pf_euler`, `pf_heun`: their output does not depend on the
Brownian path, so the distance to an SDE path is O(1) whatever the step (against an ODE reference
it would be the deterministic global error of the flow map, another quantity; the error of their
output law is what `exact_gaussian` and `quadrature` measure).

Standard error by the delta method over the n paths: with D_i = ‖Y_i − Y_i^ref‖² and
m = mean D, strong = √m and se = sd(D)/√n / (2√m).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from diffusion_rates import noise
from diffusion_rates.samplers import SAMPLERS, Sampler, grid_steps
from diffusion_rates.schedules import Grid, Step

M_REF = 32  # fine sub-steps of the reference per coarse step (even: the floor uses M/2)
SAMPLERS_STRONG = ("em", "ei", "sra1")  # the samplers whose noise is this SDE's increment
_SRA1 = SAMPLERS["sra1"]


def valid(sampler_name: str) -> bool:
    return sampler_name in SAMPLERS_STRONG


def fine_increments(z: jax.Array, h) -> tuple[jax.Array, jax.Array]:
    """(ΔW, I_(1,0)) of one sub-step of length h from two standard normals z = (z1, z2)."""
    dW = jnp.sqrt(h) * z[0]
    return dW, 0.5 * h * (dW + jnp.sqrt(h) * z[1] / jnp.sqrt(3.0))


def _zero_acc(y):
    """Running sums over the sub-steps of a coarse step: (W − W_0, I_(1,0), E of `ei`)."""
    return (jnp.zeros_like(y), jnp.zeros_like(y), jnp.zeros_like(y))


def _accumulate(acc, dW, I, h, weight):
    """Add one sub-step (ΔW_j, I_j) of length h: W ← W + ΔW_j, I ← I + I_j + h·W (W before the
    update: the displacement at the sub-step's start), E ← E + weight·((1 − h)ΔW_j + I_j) with
    weight = e^{γ − jh}."""
    W, I_acc, E = acc
    return (W + dW, I_acc + I + h * W, E + weight * ((1.0 - h) * dW + I))


def assemble(dW: jax.Array, I: jax.Array, h):
    """Coarse (ΔW, I_(1,0), E) of m = len(dW) sub-steps of length h (leading axis = sub-steps),
    γ = m h, by the same accumulation `paths` runs; E is `ei`'s unnormalised noise."""
    gamma = dW.shape[0] * h

    def body(acc, x):
        dW_j, I_j, j = x
        return _accumulate(acc, dW_j, I_j, h, jnp.exp(gamma - j * h)), None

    acc, _ = jax.lax.scan(body, _zero_acc(dW[0]), (dW, I, jnp.arange(dW.shape[0])))
    return acc


def _safe_div(x, scale):
    """x/scale, 0 where scale = 0 (zero-length steps, as padded grids have)."""
    ok = scale > 0
    return jnp.where(ok, x / jnp.where(ok, scale, 1.0), 0.0)


def sra1_noise(dW, I, h):
    """The standard normals `samplers._sra1` reads for a step of length h with increments ΔW, I."""
    dZ = jnp.sqrt(3.0) * (2.0 * _safe_div(I, h) - dW)
    return jnp.stack([_safe_div(dW, jnp.sqrt(h)), _safe_div(dZ, jnp.sqrt(h))])


def ei_variance(gamma, m: int):
    """Var E for unit-variance increments: Σ_j e^{2(γ − jh)} (h − h² + h³/3), h = γ/m."""
    h = gamma / m
    j = jnp.arange(m)
    return jnp.sum(jnp.exp(2.0 * (gamma - j * h))) * (h - h**2 + h**3 / 3.0)


def coarse_noise(name: str, st: Step, acc, m: int):
    """The standard-normal `noise` argument of sampler `name` on coarse step st (module doc)."""
    W, I, E = acc
    if name == "em":
        return _safe_div(W, jnp.sqrt(st.gamma))[None]
    if name == "ei":
        return _safe_div(E, jnp.sqrt(ei_variance(st.gamma, m)))[None]
    if name == "sra1":
        return sra1_noise(W, I, st.gamma)
    raise ValueError(f"strong: sampler {name!r} is not supported ({', '.join(SAMPLERS_STRONG)})")


def _fine_step(s, h) -> Step:
    return Step(s=s, s_next=s - h, gamma=h, euler_gamma=h)


def paths(sampler: Sampler, score, steps: Step, y0, key, m: int = M_REF):
    """(coarse output, reference at m sub-steps, reference at m/2) from y0, shape (n, d) each.

    Pure and traceable (jit it with sampler, score and m fixed, e.g. by a closure: targets hold
    arrays, so their scores are not hashable static arguments)."""
    if m < 2 or m % 2:
        raise ValueError(f"strong: the reference's sub-steps must be even and >= 2 (got {m})")

    def advance(carry, st, k):
        y, ref, half = carry
        h = st.gamma / m
        key_k = jax.random.fold_in(key, k)

        def pair(inner, i):
            ref, half, acc = inner
            pair_acc = _zero_acc(y)
            z = noise.normal(jax.random.fold_in(key_k, i), (y.shape[0], 4, *y.shape[1:]), y.dtype)
            z = jnp.moveaxis(z, 1, 0).reshape(2, 2, *y.shape)
            for j in (0, 1):  # two sub-steps of the reference, one of the M/2 one
                dW, I = fine_increments(z[j], h)
                j = 2 * i + j
                ref = _SRA1.step(ref, score, _fine_step(st.s - j * h, h), sra1_noise(dW, I, h))
                acc = _accumulate(acc, dW, I, h, jnp.exp(st.gamma - j * h))
                pair_acc = _accumulate(pair_acc, dW, I, h, 0.0)
            W2, I2, _ = pair_acc
            half = _SRA1.step(
                half, score, _fine_step(st.s - 2 * i * h, 2 * h), sra1_noise(W2, I2, 2 * h)
            )
            return (ref, half, acc), None

        (ref, half, acc), _ = jax.lax.scan(pair, (ref, half, _zero_acc(y)), jnp.arange(m // 2))
        y = sampler.step(y, score, st, coarse_noise(sampler.name, st, acc, m))
        return y, ref, half

    def coarse(carry, xs):
        st, k = xs
        return jax.lax.cond(st.gamma > 0, partial(advance, st=st, k=k), lambda c: c, carry), None

    n_steps = steps.s.shape[0]
    (y, ref, half), _ = jax.lax.scan(coarse, (y0, y0, y0), (steps, jnp.arange(n_steps)))
    return y, ref, half


def rms(a, b) -> tuple[float, float]:
    """(sqrt(mean_i ‖a_i − b_i‖²), its delta-method standard error)."""
    D = np.sum((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2, axis=-1)
    m = float(D.mean())
    if m <= 0:
        return 0.0, 0.0
    se = float(D.std(ddof=1) / np.sqrt(len(D))) if len(D) > 1 else float("nan")
    return float(np.sqrt(m)), float(se / (2.0 * np.sqrt(m)))


def estimate(sampler: Sampler, score, grid: Grid, y0, key, m: int = M_REF):
    """(value, stderr, floor) of `strong` for the sampler on `grid` from y0 (n, d)."""
    if not valid(sampler.name):
        raise ValueError(
            f"strong: sampler {sampler.name!r} is not supported ({', '.join(SAMPLERS_STRONG)})"
        )
    steps = grid_steps(grid, y0.dtype)
    run = jax.jit(partial(paths, sampler, score, m=m))
    y, ref, half = run(steps, jnp.asarray(y0), key)
    if not bool(jnp.all(jnp.isfinite(y)) & jnp.all(jnp.isfinite(ref))):
        raise FloatingPointError("strong: non-finite values in the sampler's or reference's paths")
    value, stderr = rms(y, ref)
    floor, _ = rms(half, ref)
    return value, stderr, floor
