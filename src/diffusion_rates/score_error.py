"""Score-error models ŝ = s + error, and the measured error in each paper's sense.

Models (`score_error=<name> score_error.eps=<ε>`):
- `none`: ŝ = s.
- `bias`: ŝ(x, s) = s(x, s) + ε·v(x)/‖v(x)‖ with v(x) = b + W cos(Ωx + φ) a fixed smooth random
  field (random Fourier features around a unit offset b, ‖W cos(·)‖ ≤ 1/2 so ‖v‖ ≥ 1/2 and the
  normalisation is smooth). The error has norm exactly ε at every x, so E_{q_s}‖ŝ − s‖² = ε² at
  every s: the rescaling of docs/mathematics.md ("Score errors"), done pointwise.
- `misspecified`: the exact score of the target shifted by Δ, ‖Δ‖ = ε in a random direction:
  q̃_s(x) = q_s(x − a_s Δ), so ŝ(x, s) = s(x − a_s Δ, s). Its error grows like a_s ε/σ_s² as s → 0;
  the measured ε² says how large it was.
- `noise`: ŝ = s + (ε/√d)·ξ with ξ ~ N(0, I) fresh for each (x, s), so E‖ŝ − s‖² = ε².
- `learned`: ŝ a network fitted by denoising score matching on samples of the target
  (learned.py); no ε: its size is set by the training, and measured.
The errors the papers assume: step-weighted Σ_k γ_k E_{q_{s_k}}‖ŝ − s‖² (BBDD Assumption H2, PAD)
and the plain average (1/N) Σ_k E_{q_{s_k}}‖ŝ − s‖² (LCW Eq. 7); `measured` estimates both.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from diffusion_rates import learned
from diffusion_rates.process import alpha

MODELS = ("none", "bias", "misspecified", "noise", "learned")
FEATURES = 16  # random Fourier features of the bias field


class ScoreError(NamedTuple):
    name: str
    eps: float
    params: dict  # arrays of the model, in ambient coordinates

    def apply(self, score, to_coords=lambda x: x):
        """ŝ built on `score`, in the coordinates `to_coords` maps ambient vectors to (only the
        `misspecified` shift is a vector; the others are rotation invariant or not affine)."""
        if self.name == "learned":
            return lambda y, s: learned.score(self.params, y, s)
        if is_exact(self.name, self.eps):
            return score
        if self.name == "misspecified":
            shift = to_coords(self.params["shift"])
            return lambda y, s: score(y - alpha(s) * shift, s)
        if self.name == "bias":
            return lambda y, s: score(y, s) + self.eps * _unit_field(self.params, y)
        key = self.params["key"]
        return lambda y, s: (
            score(y, s)
            + self.eps
            / jnp.sqrt(y.shape[-1])
            * jax.random.normal(_key_at(key, s, y), y.shape, y.dtype)
        )


def is_exact(name: str, eps: float) -> bool:
    """Whether ŝ is the exact score."""
    return name == "none" or (eps == 0 and name != "learned")


def is_affine(name: str, eps: float) -> bool:
    """Whether ŝ stays affine when s is (what exact Gaussian laws need)."""
    return name == "misspecified" or is_exact(name, eps)


def _unit_field(params, y):
    v = params["offset"] + jnp.cos(y @ params["freq"].T + params["phase"]) @ params["weight"]
    return v / jnp.linalg.norm(v, axis=-1, keepdims=True)


def _key_at(key, s, y):
    """A key that differs for every (s, first coordinates of y): fresh noise per call without
    threading a key through the samplers' score interface."""
    bits = jax.lax.bitcast_convert_type(jnp.asarray(s, jnp.float64), jnp.uint32)
    key = jax.random.fold_in(jax.random.fold_in(key, bits[0]), bits[1])
    ybits = jax.lax.bitcast_convert_type(jnp.asarray(y, jnp.float64).reshape(-1)[:2], jnp.uint32)
    return jax.random.fold_in(key, jnp.sum(ybits))


def build(name: str, eps: float, d: int, seed: int) -> ScoreError:
    key = jax.random.PRNGKey(seed)
    k_dir, k_freq, k_phase, k_weight = jax.random.split(key, 4)
    params = {}
    if name == "misspecified":
        direction = jax.random.normal(k_dir, (d,))
        params["shift"] = eps * direction / jnp.linalg.norm(direction)
    elif name == "bias":
        offset = jax.random.normal(k_dir, (d,))
        weight = jax.random.normal(k_weight, (FEATURES, d))
        # Σ_j ‖W_j‖ ≤ 1/2 keeps ‖v‖ ≥ 1/2 for every x.
        weight = 0.5 * weight / jnp.sum(jnp.linalg.norm(weight, axis=1))
        params = dict(
            offset=offset / jnp.linalg.norm(offset),
            weight=weight,
            freq=jax.random.normal(k_freq, (FEATURES, d)),
            phase=jax.random.uniform(k_phase, (FEATURES,), maxval=2 * jnp.pi),
        )
    elif name == "noise":
        params["key"] = k_dir
    return ScoreError(name, float(eps), params)


def measured(target, score_error: ScoreError, s_grid, n: int, key) -> dict:
    """Monte Carlo estimates of E_{q_{s_k}}‖ŝ − s‖² at the N grid times s_0 … s_{N−1} (where the
    reverse steps evaluate the score), combined as the papers do.

    Returns {"eps_score_sq_weighted": (value, stderr), "eps_score_sq_mean": (value, stderr)}."""
    s = jnp.asarray(s_grid[:-1])
    gamma = jnp.asarray(s_grid[:-1] - s_grid[1:])
    if is_exact(score_error.name, score_error.eps):
        zero = (0.0, 0.0)
        return {"eps_score_sq_weighted": zero, "eps_score_sq_mean": zero}
    approx = score_error.apply(target.score)

    def at(sk, k):
        x = target.sample(jax.random.fold_in(key, k), n, sk)
        err = jnp.sum((approx(x, sk) - target.score(x, sk)) ** 2, axis=-1)
        return err.mean(), err.var(ddof=1) / n

    means, variances = jax.lax.map(lambda a: at(*a), (s, jnp.arange(len(s))))
    weighted = (float(jnp.sum(gamma * means)), float(jnp.sqrt(jnp.sum(gamma**2 * variances))))
    plain = (float(jnp.mean(means)), float(jnp.sqrt(jnp.sum(variances)) / len(s)))
    return {"eps_score_sq_weighted": weighted, "eps_score_sq_mean": plain}
