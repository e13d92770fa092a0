"""`path_mc`: path-space quantities by Monte Carlo over exact forward paths.

- `kl_path`: the discrete-path KL E_Q[log q(y_{0:N}) − log p̂(y_{0:N})] under the exact path law Q
  (y_N ~ q_δ, then the forward kernels up the grid), = −E log w with the path weights of
  `density_ratio`. By data processing it bounds the marginal KL(q_δ ‖ p̂) from above.
- `girsanov`: Σ_k ∫_{s_{k+1}}^{s_k} E‖∇log q_u(X_u) − ŝ(X_{s_k}, s_k)‖² du over the exact forward
  process (X_{s_k} = e^{−(s_k − u)} X_u + σ(s_k − u) Z): the continuous-time path KL of the
  exponential integrator, the very quantity the BBDD (Sec. 3) and PAD bounds control. The inner
  integral is Gauss–Legendre in u; the outer expectation Monte Carlo, independent per node.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from diffusion_rates.metrics.density_ratio import log_weights
from diffusion_rates.noise import normal
from diffusion_rates.process import sigma2

NODES = 4  # Gauss–Legendre nodes per step: the integrand is smooth in u within a step


def kl_path(sampler, score, target, grid, n: int, key, init="standard", dtype=jnp.float64):
    y = target.sample(jax.random.fold_in(key, 0), n, grid.s[-1]).astype(dtype)
    neg_logw = -log_weights(sampler, score, target, grid, y, jax.random.fold_in(key, 1), 1, init)
    return float(neg_logw.mean()), float(neg_logw.std(ddof=1) / np.sqrt(n))


def girsanov(score, target, grid, n: int, key, dtype=jnp.float64):
    nodes, weights = np.polynomial.legendre.leggauss(NODES)
    s_hi, s_lo = grid.s[:-1], grid.s[1:]
    u = 0.5 * (s_hi - s_lo)[:, None] * nodes + 0.5 * (s_hi + s_lo)[:, None]  # (N, NODES)
    w = 0.5 * (s_hi - s_lo)[:, None] * weights  # quadrature weights, (N, NODES)
    s_start = np.broadcast_to(s_hi[:, None], u.shape)

    def at(args):
        uk, sk, lag, k = args
        ku, kz = jax.random.split(jax.random.fold_in(key, k))
        x_u = target.sample(ku, n, uk)
        x_s = jnp.exp(-lag) * x_u + jnp.sqrt(sigma2(lag)) * normal(kz, x_u.shape, x_u.dtype)
        err = jnp.sum((target.score(x_u, uk) - score(x_s, sk)) ** 2, axis=-1)
        return err.mean(), err.var(ddof=1) / n

    # times in the loop's precision (float64 ones would promote a float32 target's samples), the
    # lags s_k − u taken in float64 first: in float32 the difference of two close times is not
    times = [jnp.asarray(a.ravel(), dtype) for a in (u, s_start, s_start - u)]
    flat = (*times, jnp.arange(u.size))
    means, variances = jax.lax.map(at, flat)
    w = jnp.asarray(w.ravel())
    return float(jnp.sum(w * means)), float(jnp.sqrt(jnp.sum(w**2 * variances)))
