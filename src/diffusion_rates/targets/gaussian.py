"""Gaussian targets N(m, U diag(λ) Uᵀ) and their noised laws q_s = N(a_s m, a_s² Σ + σ_s² I)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from diffusion_rates.noise import normal
from diffusion_rates.process import alpha, sigma2
from diffusion_rates.validation import ConfigError, boolean, choice, integer, number


@dataclass(frozen=True)
class Gaussian:
    """Eigenvalues λ ≥ 0 (0 is a point mass in that direction) in the orthonormal basis U.

    `basis=None` means U = I, the fast path for axis-aligned targets."""

    mean: jax.Array  # (d,)
    eigvals: jax.Array  # (d,)
    basis: jax.Array | None = None  # (d, d), columns are eigenvectors
    normalisation: str = "none"
    name: str = "gaussian"

    @property
    def d(self) -> int:
        return self.mean.shape[0]

    @property
    def intrinsic_dim(self) -> int:
        return int(np.sum(np.asarray(self.eigvals) > 0))

    K = 1

    def to_eigen(self, x):
        return x if self.basis is None else x @ self.basis

    def from_eigen(self, z):
        return z if self.basis is None else z @ self.basis.T

    def eigen_mean(self, s):
        """Mean of q_s in the eigenbasis: a_s Uᵀm."""
        return alpha(s) * self.to_eigen(self.mean)

    def eigen_variances(self, s):
        """Variances of q_s in the eigenbasis: a_s² λ + σ_s²."""
        return alpha(s) ** 2 * self.eigvals + sigma2(s)

    def eigen_score(self, z, s):
        """Score of q_s in eigen-coordinates: diagonal, -(z - a_s Uᵀm) / (a_s² λ + σ_s²)."""
        return -(z - self.eigen_mean(s)) / self.eigen_variances(s)

    def log_prob(self, x, s):
        v = self.eigen_variances(s)
        z = self.to_eigen(x) - self.eigen_mean(s)
        return -0.5 * jnp.sum(z**2 / v + jnp.log(2 * jnp.pi * v), axis=-1)

    def score(self, x, s):
        return self.from_eigen(self.eigen_score(self.to_eigen(x), s))

    def posterior_mean(self, x, s):
        """Tweedie: E[X_0 | X_s = x] = (x + σ_s² ∇log q_s(x)) / a_s."""
        return (x + sigma2(s) * self.score(x, s)) / alpha(s)

    def sample(self, key, n, s):
        z = normal(key, (n, self.d), self.mean.dtype)
        return self.from_eigen(self.eigen_mean(s) + jnp.sqrt(self.eigen_variances(s)) * z)


def spectrum(kind: str, d: int, power: float = 1.0, spectrum_file: str | None = None):
    """Eigenvalues before normalisation: `flat` (ones), `power_law` (λ_i = i^{-power}) or `file`
    (a .npy of eigenvalues, its first d sorted decreasingly)."""
    if kind == "flat":
        return np.ones(d)
    if kind == "power_law":
        return np.arange(1, d + 1, dtype=np.float64) ** (-power)
    if kind == "file":
        return np.sort(np.load(spectrum_file).astype(np.float64))[::-1][:d]
    raise ConfigError(f"target.spectrum: one of {', '.join(SPECTRA)} (got {kind!r})")


def gaussian(
    d: int,
    spectrum_kind: str = "flat",
    power: float = 1.0,
    spectrum_file: str | None = None,
    mean_norm: float = 0.0,
    rotate: bool = False,
    normalise: bool = True,
    seed: int = 0,
) -> Gaussian:
    """Build a Gaussian target; `normalise` scales λ to mean 1 (trace d: BBDD's Cov = I scale);
    the mean is a random direction of norm `mean_norm`; `rotate` draws a Haar-random basis."""
    lam = spectrum(spectrum_kind, d, power, spectrum_file)
    if normalise and lam.sum() > 0:
        lam = lam * d / lam.sum()
    key_mean, key_basis = jax.random.split(jax.random.PRNGKey(seed))
    direction = jax.random.normal(key_mean, (d,))
    mean = mean_norm * direction / jnp.linalg.norm(direction)
    basis = None
    if rotate:
        q, r = jnp.linalg.qr(jax.random.normal(key_basis, (d, d)))
        basis = q * jnp.sign(jnp.diag(r))  # sign fix makes Q Haar-distributed
    return Gaussian(mean, jnp.asarray(lam), basis, "trace" if normalise else "none")


SPECTRA = ("flat", "power_law", "file")


def validate_config(c) -> None:
    integer("target.d", c.d, 1)
    choice("target.spectrum", c.spectrum, SPECTRA)
    number("target.power", c.power)
    number("target.mean_norm", c.mean_norm, low=0.0)
    boolean("target.rotate", c.rotate)
    boolean("target.normalise", c.normalise)
    integer("target.seed", c.seed, 0)
    if c.spectrum == "file":
        path = c.spectrum_file
        if path is None or not Path(path).is_file():
            raise ConfigError(
                f"target.spectrum_file: an existing .npy of eigenvalues (got {path!r})"
            )
        values = _eigenvalues(path)
        if not np.all(np.isfinite(values)) or np.any(values < 0):
            raise ConfigError(f"target.spectrum_file: eigenvalues must be finite and >= 0 ({path})")
        if len(values) < c.d:
            raise ConfigError(f"target.d: at most {len(values)} for target.spectrum_file {path}")


def _eigenvalues(path) -> np.ndarray:
    """The .npy at `path` as a 1-D float64 array; ConfigError naming the key and what is wrong
    (numpy's own messages name neither)."""
    try:
        values = np.load(path, allow_pickle=False)
    except Exception:
        values = None
    if not isinstance(values, np.ndarray):  # unreadable, pickled, or an .npz archive
        raise ConfigError(f"target.spectrum_file: a .npy file of eigenvalues ({path})")
    if values.dtype.kind not in "iuf":
        raise ConfigError(f"target.spectrum_file: an array of numbers (got {values.dtype}; {path})")
    if values.ndim != 1:
        raise ConfigError(f"target.spectrum_file: a 1-D array (got shape {values.shape}; {path})")
    return values.astype(np.float64)


def from_config(c) -> Gaussian:
    return gaussian(
        c.d, c.spectrum, c.power, c.spectrum_file, c.mean_norm, c.rotate, c.normalise, c.seed
    )
