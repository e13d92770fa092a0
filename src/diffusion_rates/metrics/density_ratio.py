"""`density_ratio`: KL and TV between q_δ and the sampler's output p̂ through r = p̂/q_δ.

For y ~ q_δ, run the exact forward chain from y up the sampler's own grid (y_N = y, then
y_k = e^{-γ_k} y_{k+1} + σ(γ_k) ξ) and weigh each path by

    w = π(y_0) Π_k p̂(y_{k+1} | y_k) / (q_δ(y_N) Π_k f(y_k | y_{k+1})),

π the sampler's initial law, p̂ its Gaussian kernels N(A y_k + B ŝ(y_k, s_k), C² I), f the forward
kernels. E[w | y] = p̂(y)/q_δ(y), so the average r̂(y) of M paths is unbiased, and
kl = KL(q_δ ‖ p̂) = −E_q log r and tv = ½ E_q |1 − r| (DESIGN.md, estimator 3). Valid for one-step
samplers whose kernels have a density (C > 0 at every step).

Checks carried with the estimate: E_q[r̂] must be 1 (`ratio_mean`); the spread of log w within a
y says when the importance weights degenerate (`log_weight_spread`).

Bias of the inner average. −log r̂ exceeds −log r by about b = Var(w | y)/(2 M r²) (delta method,
second order in the weights' relative spread): `kl` is reported with that estimate subtracted,
and b is its floor (a value under the size of its own correction carries no information).
|1 − r̂| has no such expansion at r = 1, where its bias falls like 1/√M (the noise of r̂), and
like 1/M away from it: the floor of `tv` is (tv(M/2) − tv(M))/(√2 − 1), the bias at M if it
falls like 1/√M, which bounds it in both regimes; the value is left uncorrected.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from diffusion_rates.process import sigma2

SPREAD_LIMIT = 2.0  # above this std of log w, r̂ rests on a few paths: flagged unreliable


def _log_normal(x, mean, var):
    d = x.shape[-1]
    return -0.5 * (jnp.sum((x - mean) ** 2, -1) / var + d * jnp.log(2 * jnp.pi * var))


def log_weights(sampler, score, target, grid, y, key, paths: int, init: str = "standard"):
    """log w of `paths` forward paths from each row of y: shape (n, paths)."""
    steps = jax.tree.map(jnp.asarray, grid.steps())
    coeffs = jax.vmap(sampler.coefficients)(steps)
    ys = jnp.repeat(y[:, None, :], paths, axis=1).reshape(-1, y.shape[-1])
    s_T = grid.s[0]

    def body(carry, xs):
        y_next, logw = carry  # y_{k+1} at forward time s_{k+1}
        st, (A, B, C), k = xs
        var_f = sigma2(st.gamma)
        noise = jax.random.normal(jax.random.fold_in(key, k), y_next.shape)
        y_k = jnp.exp(-st.gamma) * y_next + jnp.sqrt(var_f) * noise
        logw = logw - _log_normal(y_k, jnp.exp(-st.gamma) * y_next, var_f)
        logw = logw + _log_normal(y_next, A * y_k + B * score(y_k, st.s), C**2)
        return (y_k, logw), None

    xs = (steps, coeffs, jnp.arange(grid.n_steps))
    reverse = jax.tree.map(lambda a: a[::-1], xs)
    (y0, logw), _ = jax.lax.scan(body, (ys, jnp.zeros(len(ys))), reverse)
    if init == "standard":
        log_pi = _log_normal(y0, 0.0, 1.0)
    else:
        log_pi = target.log_prob(y0, s_T)
    logw = logw + log_pi - jnp.repeat(target.log_prob(y, grid.s[-1]), paths)
    return logw.reshape(len(y), paths)


def estimate(sampler, score, target, grid, n: int, paths: int, key, init="standard"):
    """{metric: (value, stderr, floor)} for kl, tv, ratio_mean and log_weight_spread."""
    k_y, k_paths = jax.random.split(key)
    y = target.sample(k_y, n, grid.s[-1])
    logw = log_weights(sampler, score, target, grid, y, k_paths, paths, init)
    log_r = jax.nn.logsumexp(logw, axis=1) - jnp.log(paths)
    half = paths // 2
    log_r_half = jax.nn.logsumexp(logw[:, :half], axis=1) - jnp.log(half)
    r, r_half = jnp.exp(log_r), jnp.exp(log_r_half)
    w_over_r = jnp.exp(logw - log_r[:, None])
    kl_bias = jnp.mean(jnp.var(w_over_r, axis=1, ddof=1)) / (2 * paths)
    tv, tv_half = 0.5 * jnp.abs(1 - r), 0.5 * jnp.abs(1 - r_half)
    tv_bias = jnp.maximum(tv_half.mean() - tv.mean(), 0.0) / (np.sqrt(2.0) - 1.0)
    se = lambda a: float(jnp.std(a, ddof=1) / np.sqrt(n))  # noqa: E731
    return {
        "kl": (float(-log_r.mean() - kl_bias), se(log_r), float(kl_bias)),
        "tv": (float(tv.mean()), se(tv), float(tv_bias)),
        "ratio_mean": (float(r.mean()), se(r), 0.0),
        "log_weight_spread": (float(jnp.mean(jnp.std(logw, axis=1))), 0.0, 0.0),
    }


def valid(sampler, grid) -> bool:
    """Every reverse kernel must have a density: a one-step rule with C > 0 at every step."""
    if sampler.coefficients is None:
        return False
    _, _, C = jax.vmap(sampler.coefficients)(jax.tree.map(jnp.asarray, grid.steps()))
    return bool(jnp.all(C > 0))
