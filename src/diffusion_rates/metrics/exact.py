"""`exact_gaussian`: the exact output law of an affine sampler on a Gaussian target.

With a Gaussian target the exact score is affine and diagonal in the target's eigenbasis, so every
sampler built from affine steps maps N(m, diag v) to another Gaussian, coordinate by coordinate.
The moments are propagated through the sampler's own step function: m' = F(m, 0) and
v' = (∂F/∂y)² v + Σ_j (∂F/∂ξ_j)², derivatives taken by forward-mode autodiff (exact, since F is
affine). For the one-step rules this is m' = (A - B/v_s) m + B a_s m_data / v_s and
v' = (A - B/v_s)² v + C², v_s = a_s² λ + σ_s² (docs/estimators.md). Any d, no Monte Carlo noise.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from diffusion_rates.samplers import Sampler
from diffusion_rates.schedules import Grid
from diffusion_rates.targets.gaussian import Gaussian


def output_moments(
    sampler: Sampler, target: Gaussian, grid: Grid, init: str = "standard", score=None
):
    """Mean and variance of the sampler's output in the target's eigenbasis.

    `init="standard"` starts from N(0, I) as the papers do; `init="target"` from q_T itself, so
    that only the discretisation error remains. `score` (eigen-coordinates, affine) defaults to
    the exact one."""
    score = target.eigen_score if score is None else score
    s0 = grid.s[0]
    if init == "standard":
        m, v = jnp.zeros(target.d), jnp.ones(target.d)
    else:
        m, v = target.eigen_mean(s0), target.eigen_variances(s0)
    unit = jnp.ones(target.d)
    zero_noise = jnp.zeros((sampler.n_noise, target.d))
    # e_j: unit tangent in noise channel j on every coordinate at once (the step is per-coordinate).
    noise_tangents = jnp.eye(sampler.n_noise)[:, :, None] * unit

    def body(carry, st):
        m, v = carry

        def step(y, noise):
            return sampler.step(y, score, st, noise)

        m_next, gain = jax.jvp(lambda y: step(y, zero_noise), (m,), (unit,))
        noise_gain = jax.vmap(lambda e: jax.jvp(lambda xi: step(m, xi), (zero_noise,), (e,))[1])(
            noise_tangents
        )
        return (m_next, gain**2 * v + jnp.sum(noise_gain**2, axis=0)), None

    steps = jax.tree.map(jnp.asarray, grid.steps())
    (m, v), _ = jax.lax.scan(body, (m, v), steps)
    return m, v


def kl_gaussian(m_p, v_p, m_q, v_q):
    """KL(N(m_p, diag v_p) ‖ N(m_q, diag v_q)) summed over coordinates; +inf where p puts mass
    outside q's support (v_q = 0 < v_p), 0 for two equal point masses."""
    safe_q = jnp.where(v_q > 0, v_q, 1.0)
    x = (v_p - v_q) / safe_q  # r - 1 with r = v_p / v_q, without forming r
    # log r: log1p keeps its digits near r = 1; far from it (r ≪ 1 rounds x to −1) the
    # difference of logs is exact enough and finite
    log_r = jnp.where(jnp.abs(x) < 0.5, jnp.log1p(x), jnp.log(v_p) - jnp.log(safe_q))
    per = 0.5 * (x - log_r + (m_p - m_q) ** 2 / safe_q)
    point_q = jnp.where((v_p == 0) & (m_p == m_q), 0.0, jnp.inf)
    return jnp.sum(jnp.where(v_q > 0, per, point_q))


def w2_gaussian(m_p, v_p, m_q, v_q):
    """W2 between Gaussians diagonal in one basis: √(Σ (Δm)² + (√v_p - √v_q)²)."""
    root_sum = jnp.sqrt(v_p) + jnp.sqrt(v_q)
    root_diff = jnp.where(root_sum > 0, (v_p - v_q) / jnp.where(root_sum > 0, root_sum, 1.0), 0.0)
    return jnp.sqrt(jnp.sum((m_p - m_q) ** 2 + root_diff**2))


def log_bhattacharyya(m_p, v_p, m_q, v_q):
    """log of the Bhattacharyya coefficient BC = Π (2√(v_p v_q)/(v_p+v_q))^{1/2}
    e^{-Δm²/(4(v_p+v_q))} of two Gaussians diagonal in one basis."""
    total = v_p + v_q
    safe = jnp.where(total > 0, total, 1.0)
    mean_term = jnp.where(
        total > 0, (m_p - m_q) ** 2 / (4 * safe), jnp.where(m_p == m_q, 0, jnp.inf)
    )
    return jnp.sum(0.25 * jnp.log1p(-(((v_p - v_q) / safe) ** 2)) - mean_term)


def hellinger_gaussian(m_p, v_p, m_q, v_q):
    """Hellinger distance H = √(1 - BC), BC the Bhattacharyya coefficient."""
    return jnp.sqrt(-jnp.expm1(log_bhattacharyya(m_p, v_p, m_q, v_q)))


METRICS = {
    "kl": lambda out, tgt: kl_gaussian(*tgt, *out),
    "kl_reverse": lambda out, tgt: kl_gaussian(*out, *tgt),
    "w2": lambda out, tgt: w2_gaussian(*out, *tgt),
    "hellinger": lambda out, tgt: hellinger_gaussian(*out, *tgt),
}


def exact_gaussian(sampler, target, grid, metrics, init="standard", score=None, at=None):
    """Exact metrics between q_at and the sampler's output law; `at` is the forward time of the
    reference, δ (the grid's end, q_δ) by default, 0 for the data law q_0 = N(m, U diag(λ) Uᵀ).

    Returns {metric: (value, stderr, floor)}. stderr is 0 (no sampling); the floor is the
    rounding level of float64 after N steps: d·(N·eps)² for KL-type metrics and its square root
    (times the data scale for W2) for distances. Against a singular data law (some λ_i = 0),
    an output with variance in such a direction is at KL +inf both ways (`kl_gaussian`)."""
    out = output_moments(sampler, target, grid, init, score)
    at = grid.s[-1] if at is None else at
    tgt = (target.eigen_mean(at), target.eigen_variances(at))
    rounding = grid.n_steps * np.finfo(np.float64).eps
    kl_floor = target.d * rounding**2
    scale = float(jnp.sqrt(jnp.sum(tgt[1]) + jnp.sum(tgt[0] ** 2)))
    floors = {
        "kl": kl_floor,
        "kl_reverse": kl_floor,
        "hellinger": np.sqrt(kl_floor),
        "w2": scale * rounding,
    }
    return {k: (float(METRICS[k](out, tgt)), 0.0, float(floors[k])) for k in metrics}
