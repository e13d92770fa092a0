"""Sample-based distances between two sample sets x (target) and y (sampler output), any target.

Each is a plug-in estimate with a bias that does not vanish at equal laws, so each is reported
next to its floor: the same estimator on two independent exact samples of the target at the same
size (`with_floor`). Standard errors come from a bootstrap over both sample sets.
- `gaussian_fit`: W2 between the Gaussians fitted to x and y,
  W2² = ‖m_x − m_y‖² + tr(Σ_x + Σ_y − 2(Σ_x^{1/2} Σ_y Σ_x^{1/2})^{1/2}) (Dowson & Landau 1982),
  with full or diagonal covariances.
- `sliced`: sliced W2, the root mean over random directions θ of the 1-D W2² of θ·x and θ·y
  (sorted samples; Rabin et al. 2011).
- `sinkhorn`: √ of the debiased Sinkhorn divergence S_ε (ott-jax, Feydy et al. 2019) at a fixed
  ε = 0.05·(mean squared norm of the target sample), a W2 proxy whose entropic bias is shared by
  the floor; a run that does not converge is an error, not a number.
- `mmd`: MMD² with an RBF kernel of median-heuristic bandwidth, unbiased U-statistic
  (Gretton et al. 2012).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from ott.geometry import pointcloud
from ott.tools import sinkhorn_divergence

BOOTSTRAP = 20
PROJECTIONS = 256
QUADRATIC_MAX = 1024  # mmd and sinkhorn cost O(n²): they use at most this many points of each set


def _sqrtm_psd(a):
    w, v = jnp.linalg.eigh(a)
    return (v * jnp.sqrt(jnp.clip(w, 0.0))) @ v.T


def gaussian_fit_w2(x, y, diagonal: bool = False):
    mx, my = x.mean(0), y.mean(0)
    mean_term = jnp.sum((mx - my) ** 2)
    if diagonal:
        sx, sy = x.std(0, ddof=1), y.std(0, ddof=1)
        return jnp.sqrt(mean_term + jnp.sum((sx - sy) ** 2))
    cx, cy = jnp.cov(x, rowvar=False), jnp.cov(y, rowvar=False)
    cx, cy = jnp.atleast_2d(cx), jnp.atleast_2d(cy)
    root = _sqrtm_psd(cx)
    cross = _sqrtm_psd(root @ cy @ root)
    return jnp.sqrt(jnp.clip(mean_term + jnp.trace(cx + cy - 2.0 * cross), 0.0))


def sliced_w2(x, y, key, projections: int = PROJECTIONS):
    theta = jax.random.normal(key, (projections, x.shape[1]))
    theta = theta / jnp.linalg.norm(theta, axis=1, keepdims=True)
    px, py = jnp.sort(x @ theta.T, axis=0), jnp.sort(y @ theta.T, axis=0)
    return jnp.sqrt(jnp.mean((px - py) ** 2))


def mmd_rbf(x, y):
    z = jnp.concatenate([x, y])
    sq = jnp.sum(z**2, 1)
    dist = jnp.clip(sq[:, None] + sq[None, :] - 2.0 * z @ z.T, 0.0)
    n, m = len(x), len(y)
    # Median heuristic on squared distances, over 256 points of each set: a scale, not a
    # statistic, so a subset fixes it as well as all pairs and costs no O(n² log n) sort.
    few = jnp.concatenate([jnp.arange(min(n, 256)), n + jnp.arange(min(m, 256))])
    sub = dist[few][:, few]
    bandwidth = jnp.nanmedian(jnp.where(~jnp.eye(len(few), dtype=bool), sub, jnp.nan))
    k = jnp.exp(-dist / bandwidth)
    kxx, kyy, kxy = k[:n, :n], k[n:, n:], k[:n, n:]
    return (
        (kxx.sum() - jnp.trace(kxx)) / (n * (n - 1))
        + (kyy.sum() - jnp.trace(kyy)) / (m * (m - 1))
        - 2.0 * kxy.mean()
    )


SINKHORN_EPSILON = 0.05  # relative to the target sample's mean squared norm
SINKHORN_ITERATIONS = 5000


def sinkhorn(x, y, key):
    epsilon = SINKHORN_EPSILON * jnp.mean(jnp.sum(x**2, axis=1))
    div, out = sinkhorn_divergence.sinkhorn_divergence(
        pointcloud.PointCloud,
        x,
        y,
        epsilon=epsilon,
        solve_kwargs={"max_iterations": SINKHORN_ITERATIONS},
    )
    converged = jnp.all(jnp.asarray(out.converged))
    return jnp.where(converged, jnp.sqrt(jnp.clip(div, 0.0)), jnp.nan)


ESTIMATES = {
    name: jax.jit(fn)
    for name, fn in {
        "gaussian_fit": lambda x, y, key: gaussian_fit_w2(x, y),
        "gaussian_fit_diag": lambda x, y, key: gaussian_fit_w2(x, y, diagonal=True),
        "sliced": sliced_w2,
        "sinkhorn": sinkhorn,
        "mmd": lambda x, y, key: mmd_rbf(x, y),
    }.items()
}


def bootstrap_stderr(estimate, x, y, key, rounds: int = BOOTSTRAP):
    """Standard deviation of the estimate over bootstrap resamples of both sets."""

    def one(k):
        kx, ky, ke = jax.random.split(k, 3)
        ix = jax.random.randint(kx, (len(x),), 0, len(x))
        iy = jax.random.randint(ky, (len(y),), 0, len(y))
        return estimate(x[ix], y[iy], ke)

    return jnp.std(jax.lax.map(one, jax.random.split(key, rounds)), ddof=1)


def with_floor(name: str, target_sample, output, reference, key):
    """(value, stderr, floor) of estimator `name` between the target sample and the output;
    the floor is the same estimator between the target sample and an independent `reference`
    sample of the target of the output's size."""
    estimate = ESTIMATES[name]
    if name in ("mmd", "sinkhorn"):
        target_sample, output, reference = (
            a[:QUADRATIC_MAX] for a in (target_sample, output, reference)
        )
    k_value, k_err, k_floor = jax.random.split(key, 3)
    value = estimate(target_sample, output, k_value)
    stderr = bootstrap_stderr(estimate, target_sample, output, k_err)
    floor = estimate(target_sample, reference, k_floor)
    return float(value), float(stderr), float(floor)
