"""The counter-based normals (noise.py) against N(0, 1), their layout-free rows, and the float32
path of the samplers against the float64 one on the same noise."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from diffusion_rates import noise
from diffusion_rates.precision import with_dtype
from diffusion_rates.process import ou
from diffusion_rates.samplers import SAMPLERS, sample
from diffusion_rates.schedules import make_grid
from diffusion_rates.targets.gmm import component, gmm

KEY = jax.random.PRNGKey(3)


def test_normals_have_the_standard_normal_law():
    """Kolmogorov–Smirnov on 10⁶ values, the first four moments within 5 s.e., and the tail
    mass beyond 3 (Φ: 2.70e-3) within 5 s.e."""
    z = np.asarray(noise.normal(KEY, (2000, 500))).ravel()
    n = z.size
    assert stats.kstest(z, "norm").pvalue > 1e-3
    assert abs(z.mean()) < 5 / math.sqrt(n)
    assert abs(z.var() - 1) < 5 * math.sqrt(2 / n)
    assert abs(stats.skew(z)) < 5 * math.sqrt(6 / n)
    assert abs(stats.kurtosis(z)) < 5 * math.sqrt(24 / n)
    tail, p = np.mean(np.abs(z) > 3), 2 * stats.norm.sf(3)
    assert abs(tail - p) < 5 * math.sqrt(p / n)
    assert np.abs(z).max() <= math.sqrt(50 * math.log(2))


def test_pairs_have_a_uniform_angle_and_independent_radius():
    """Box–Muller's two outputs: angle uniform on (−π, π] (all four quadrants), |z|² ~ χ²₂."""
    z = np.asarray(noise.normal(KEY, (100_000, 2)))
    angle = np.arctan2(z[:, 1], z[:, 0])
    assert stats.kstest(angle, stats.uniform(-np.pi, 2 * np.pi).cdf).pvalue > 1e-3
    assert stats.kstest((z**2).sum(1), stats.chi2(2).cdf).pvalue > 1e-3
    assert abs(np.corrcoef(z[:, 0], z[:, 1])[0, 1]) < 5 / math.sqrt(len(z))


def test_rows_coordinates_and_keys_are_uncorrelated():
    z = np.asarray(noise.normal(KEY, (20_000, 6)))
    other = np.asarray(noise.normal(jax.random.fold_in(KEY, 1), (20_000, 6)))
    c = np.corrcoef(np.concatenate([z, other], axis=1).T)
    off = c[~np.eye(12, dtype=bool)]
    assert np.abs(off).max() < 5 / math.sqrt(len(z))
    lag = np.corrcoef(z[:-1, 0], z[1:, 0])[0, 1]  # neighbouring counters
    assert abs(lag) < 5 / math.sqrt(len(z))


def test_a_row_depends_only_on_the_key_and_its_index():
    whole = noise.normal(KEY, (10, 3, 5))
    parts = [noise.normal(KEY, (4, 3, 5)), noise.normal(KEY, (6, 3, 5), first=4)]
    assert bool(jnp.all(whole == jnp.concatenate(parts)))
    assert not bool(jnp.all(whole[:4] == noise.normal(KEY, (4, 3, 5), first=1)))


def test_same_key_same_normals_in_every_dtype():
    a = noise.normal(KEY, (7, 9), jnp.float64)
    b = noise.normal(KEY, (7, 9), jnp.float32)
    assert bool(jnp.all(a == b.astype(jnp.float64)))


def mixture_run(sampler_name, n=64, d=6, steps=32):
    target = gmm(jax.random.PRNGKey(0), d=d, K=4, scale=0.5, mean_scale=2.0)
    grid = make_grid(ou(), "uniform", 5.0, 1e-2, steps)
    y0 = noise.normal(jax.random.PRNGKey(1), (n, d))
    return SAMPLERS[sampler_name], target, grid, y0


@pytest.mark.parametrize("name", ["ei", "sra1", "pf_heun"])
def test_a_changed_batch_layout_gives_the_same_samples(name):
    sampler, target, grid, y0 = mixture_run(name)
    whole = sample(sampler, target.score, grid, y0, KEY)
    parts = [
        sample(sampler, target.score, grid, y0[:24], KEY),
        sample(sampler, target.score, grid, y0[24:], KEY, first=24),
    ]
    np.testing.assert_array_equal(np.asarray(whole), np.concatenate(parts))


@pytest.mark.parametrize("name", ["em", "ei", "ddpm", "sra1"])
def test_float32_chain_tracks_the_float64_chain_on_the_same_noise(name):
    """Same normals (drawn in float32 for both), so the two outputs differ by rounding only:
    float32's 6e-8 per operation, grown over 32 steps, stays below 1e-4 of the output's scale."""
    sampler, target, grid, y0 = mixture_run(name)
    y64 = sample(sampler, target.score, grid, y0, KEY)
    t32 = with_dtype(target, jnp.float32)
    y32 = sample(sampler, t32.score, grid, y0.astype(jnp.float32), KEY)
    assert y32.dtype == jnp.float32 and y64.dtype == jnp.float64
    gap = float(jnp.max(jnp.abs(y32 - y64)))
    assert 0 < gap < 1e-4 * float(jnp.max(jnp.abs(y64)))


def test_component_indices_follow_the_weights():
    weights = jnp.asarray([0.5, 0.3, 0.15, 0.05])
    k = np.asarray(component(KEY, weights, 200_000))
    counts = np.bincount(k, minlength=4)
    assert stats.chisquare(counts, 200_000 * np.asarray(weights)).pvalue > 1e-3


def test_a_float32_copy_of_a_target_draws_the_same_sample():
    """Targets draw through `noise.normal` and `component`: the same bits in either precision,
    so a float32 run's exact samples (its outer points, its starts) are the float64 run's."""
    target = gmm(jax.random.PRNGKey(0), d=5, K=3, scale=[0.2, 0.5, 1.0], mean_scale=2.0)
    x64 = target.sample(KEY, 1000, 0.1)
    x32 = with_dtype(target, jnp.float32).sample(KEY, 1000, jnp.float32(0.1))
    assert x32.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(x32), np.asarray(x64), rtol=0, atol=1e-5)
