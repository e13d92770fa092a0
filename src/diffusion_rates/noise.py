"""Standard normal noise for the Monte Carlo loops: counter-based, fast, and free of batch layout.

Every reverse chain and every Monte Carlo estimator draws n·d fresh normals per step, and with
JAX's default generator (threefry2x32, then √2 erfinv(2u − 1)) those normals cost more than the
score's matrix products (`scripts/benchmark.py` measures both). `normal` makes them in three cheap
stages, all elementwise, so XLA fuses them into one loop:

1. **Bits.** One 64-bit word per pair of normals, w = mix(seed + (c + 1)·γ) with
   γ = 0x9E3779B97F4A7C15 and SplitMix64's finaliser `mix` (Steele, Lea & Flood, OOPSLA 2014:
   the generator of Java's SplittableRandom, which passes BigCrush), c the pair's counter and
   seed 64 bits of threefry from the call's key (one threefry call per draw, not per number).
   Counter-based: a word depends on (key, c) only.
2. **Counters by row.** Row i of a draw of shape (n, *rest) (a particle) holds P = ⌈|rest|/2⌉
   pairs with counters (first + i)·P + p, p < P: a row's normals depend on the key and its global
   index `first + i` only, so a run split into batches of particles (each with its `first`) draws
   exactly the normals of the whole.
3. **Box–Muller** (1958) on each word: R = √(−2 log u₁), u₁ = (b + ½)/2²⁴ from 24 bits; the angle
   θ = φ + qπ/2 from 22 bits for φ uniform on [−π/4, π/4) and 2 bits for the quadrant q; then
   (R cos θ, R sin θ) are two independent N(0, 1). cos φ and sin φ are their Taylor polynomials
   to φ⁸ and φ⁹ (error < 3·10⁻⁸ on |φ| ≤ π/4, below float32 rounding), the quadrant a swap and
   sign flips: no range reduction, no sin or cos call.

The normals are computed in float32 and cast to the requested dtype. Exact in law up to the
24-bit grid of u₁ and the 22-bit grid of φ: |z| ≤ √(50 log 2) ≈ 5.89, a tail of probability
2⁻²⁵ ≈ 3·10⁻⁸ left out, far below any Monte Carlo error here. Two draws whose keys differ share
no word unless their seeds differ by less than their counter ranges times γ (mod 2⁶⁴), which
has probability about 2·n·P/2⁶⁴ per pair of keys.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

_GAMMA = 0x9E3779B97F4A7C15  # 2⁶⁴/φ, SplitMix64's increment
_SIN = (1.0, -1 / 6, 1 / 120, -1 / 5040, 1 / 362880)  # sin φ = φ Σ a_j φ^{2j}
_COS = (1.0, -1 / 2, 1 / 24, -1 / 720, 1 / 40320)  # cos φ = Σ b_j φ^{2j}


def _mix(z):
    """SplitMix64's finaliser (uint64 → uint64)."""
    u = jnp.uint64
    z = (z ^ (z >> u(30))) * u(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> u(27))) * u(0x94D049BB133111EB)
    return z ^ (z >> u(31))


def _seed(key):
    """64 bits of threefry from `key`."""
    hi, lo = jax.random.bits(key, (2,), jnp.uint32).astype(jnp.uint64)
    return (hi << jnp.uint64(32)) | lo


def _even(x2, coefficients):
    acc = jnp.float32(coefficients[-1])
    for c in coefficients[-2::-1]:
        acc = acc * x2 + jnp.float32(c)
    return acc


def box_muller(words):
    """Two independent standard normals (float32) from each uint64 word."""
    f32, u32 = jnp.float32, jnp.uint32
    hi, lo = (words >> jnp.uint64(32)).astype(u32), words.astype(u32)
    u1 = ((hi >> u32(8)).astype(f32) + f32(0.5)) * f32(2.0**-24)  # in (0, 1)
    radius = jnp.sqrt(f32(-2.0) * jnp.log(u1))
    phi = ((lo >> u32(10)).astype(f32) + f32(0.5)) * f32(math.pi / 2 * 2.0**-22) - f32(math.pi / 4)
    phi2 = phi * phi
    sin, cos = phi * _even(phi2, _SIN), _even(phi2, _COS)
    # rotate (cos φ, sin φ) by qπ/2, q = the low 2 bits: a swap and sign flips
    swap, flip = (lo & u32(1)) == 1, (lo & u32(2)) == 2
    x, y = jnp.where(swap, sin, cos), jnp.where(swap, cos, sin)
    return radius * jnp.where(flip, -x, x), radius * jnp.where(swap ^ flip, -y, y)


def normal(key, shape, dtype=jnp.float64, first=0):
    """Standard normals of `shape` = (n, *rest); row i depends only on `key` and `first + i`.

    Position j < P of a row is the cosine output of word j, position P + j its sine output
    (P = ⌈|rest|/2⌉ words per row). Each element computes its own word's transform and keeps
    one output, rather than computing each word once and concatenating the halves: twice the
    arithmetic, but one elementwise expression, which XLA fuses into whatever consumes the
    noise (on a 2-core CPU the concatenated version, the same numbers, made `ei` 1.35× slower:
    the two halves were written out and read back every step)."""
    n, per_row = shape[0], math.prod(shape[1:])
    pairs = jnp.uint64((per_row + 1) // 2)
    row = jax.lax.broadcasted_iota(jnp.uint64, (n, per_row), 0) + jnp.uint64(first)
    column = jax.lax.broadcasted_iota(jnp.uint64, (n, per_row), 1)
    sine = column >= pairs
    counter = row * pairs + jnp.where(sine, column - pairs, column)
    z1, z2 = box_muller(_mix(_seed(key) + (counter + jnp.uint64(1)) * jnp.uint64(_GAMMA)))
    return jnp.where(sine, z2, z1).reshape(shape).astype(dtype)
