"""Mixture targets (gmm, lcw_gmm, point_cloud, subspace, product): scores against autodiff, Tweedie,
exact samples against analytic moments, log-densities against numpyro, and config errors.

Every target here is, at time 0, a finite Gaussian mixture in R^d (a product of 1-D mixtures has
K^k components). `dense_mixture` writes that mixture out with dense covariances, independently of
each target's own formulas, and is the reference for the moments and for numpyro.
"""

import functools
import itertools
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpyro import distributions as dist
from omegaconf import OmegaConf

from diffusion_rates.process import alpha, sigma2
from diffusion_rates.targets import TARGETS
from diffusion_rates.targets.gmm import GMM, gmm
from diffusion_rates.targets.lcw_gmm import lcw_gmm
from diffusion_rates.targets.point_cloud import point_cloud, torus
from diffusion_rates.targets.product import Coordinates, mixture_1d, product
from diffusion_rates.targets.subspace import Embedded, haar_isometry
from diffusion_rates.validation import ConfigError

CONFIGS = Path(__file__).parents[1] / "configs" / "target"
FAMILIES = ["gmm", "lcw_gmm", "point_cloud", "subspace", "product"]
TIMES = [1e-4, 1e-2, 0.3, 3.0]
key = functools.partial(jax.random.key, impl="rbg")

# Small instances with thin components (std 0.01-0.05) and atoms (std 0): hard cases at s = 1e-4.
BUILDERS = {
    "gmm_isotropic": lambda: gmm(
        key(1), 5, 4, [0.1, 0.2, 0.3, 0.4], "isotropic", [0.0, 0.01, 0.5, 1.2], 2.0
    ),
    "gmm_diagonal": lambda: gmm(key(2), 5, 3, None, "diagonal", [0.05, 0.7, 1.0], 2.0, rank=3),
    "gmm_full_low_rank": lambda: gmm(
        key(3), 5, 3, [0.5, 0.25, 0.25], "full", [0.05, 1.0, 0.7], 2.0, rank=2
    ),
    "gmm_full_normalised": lambda: gmm(key(4), 4, 2, None, "full", 1.0, 1.5, normalise=True),
    "lcw_gmm": lambda: lcw_gmm(key(5), 6, 3, 4.0),
    "cloud_sphere": lambda: point_cloud(key(6), 6, 2, 24, "sphere", normalise=True),
    "cloud_torus": lambda: point_cloud(key(7), 7, 3, 24, "torus", radius=0.7),
    "cloud_subspace": lambda: point_cloud(key(8), 5, 2, 24, "subspace"),
    "subspace": lambda: Embedded(
        gmm(key(9), 3, 2, None, "full", [0.05, 0.6], 1.5),
        haar_isometry(key(10), 6, 3),
        6,
        "subspace",
    ),
    "product_rotated": lambda: product(
        key(11), 6, 3, mixture_1d([0.3, 0.7], [-1.0, 1.5], [0.05, 0.4]), True, "none"
    ),
    "product_axis": lambda: product(
        key(12), 5, 2, mixture_1d([0.5, 0.5], [-1.0, 1.0], [0.0, 0.3]), False, "none"
    ),
}
# Each target costs a few compilations, so the fast tests leave out two of the three point-cloud
# manifolds and numpyro's check of lcw_gmm and cloud_torus, which run gmm_isotropic's code.
SLOW = pytest.mark.slow
SLOW_NAMES = ("gmm_full_normalised", "cloud_sphere", "cloud_subspace")
NAMES = [
    *[n for n in BUILDERS if n not in SLOW_NAMES],
    pytest.param("cloud_sphere", marks=SLOW),
    pytest.param("cloud_subspace", marks=SLOW),
]
NUMPYRO_NAMES = [
    *[n for n in NAMES if n not in ("lcw_gmm", "cloud_torus")],
    *[pytest.param(n, marks=SLOW) for n in ("lcw_gmm", "cloud_torus")],
]
SAMPLE_TIMES = (0.0, *TIMES, 1.0)  # 1.0 only supplies points in the tails of the others
N_SAMPLES = 20_000


@functools.cache
def target(name):
    return BUILDERS[name]()


@functools.cache
def samples(name):
    """Exact samples of X_s at every s of SAMPLE_TIMES, (times, N_SAMPLES, d): vmap over s, so
    s is a traced scalar and one compilation serves every time."""
    draw = jax.jit(jax.vmap(lambda s: target(name).sample(key(30), N_SAMPLES, s)))
    return np.asarray(draw(jnp.asarray(SAMPLE_TIMES)))


@functools.cache
def points(name):
    """For each s of TIMES, points typical of q_s and, for the tails, of the noisier q_1."""
    x = samples(name)
    return np.stack(
        [np.concatenate([x[SAMPLE_TIMES.index(s), :128], x[-1, 128:192]]) for s in TIMES]
    )


@functools.cache
def fields(name):
    """log_prob, score, posterior_mean and the autodiff gradient of log_prob at `points`, one row
    per s of TIMES (vmap over s, a traced scalar)."""
    t = target(name)

    def at(x, s):
        grad = jax.grad(lambda x: t.log_prob(x, s).sum())(x)
        return t.log_prob(x, s), t.score(x, s), t.posterior_mean(x, s), grad

    return [np.asarray(f) for f in jax.jit(jax.vmap(at))(points(name), jnp.asarray(TIMES))]


def dense_mixture(t):
    """(weights (M,), means (M, d), covariances (M, d, d)) of X_0 in numpy, written out component
    by component from the target's parameters."""
    if isinstance(t, GMM):
        w, m, lam = (np.asarray(a) for a in (t.weights, t.means, t.eigvals))
        if t.covariance == "isotropic":
            covs = lam[:, None, None] * np.eye(t.d)
        elif t.covariance == "diagonal":
            covs = lam[:, :, None] * np.eye(t.d)
        else:
            U = np.asarray(t.bases)
            covs = np.einsum("kij,kj,klj->kil", U, lam, U)
        return w, m, covs
    if isinstance(t.inner, Coordinates):
        w, m, covs = dense_mixture(t.inner.factor)  # the 1-D mixture π
        idx = np.array(list(itertools.product(range(len(w)), repeat=t.inner.d)))  # (K^k, k)
        w, m, covs = w[idx].prod(1), m[idx, 0], covs[idx, 0, 0][:, :, None] * np.eye(t.inner.d)
    else:
        w, m, covs = dense_mixture(t.inner)
    U = np.eye(t.d)[:, : m.shape[1]] if t.basis is None else np.asarray(t.basis)
    return w, m @ U.T, U @ covs @ U.T


def noised_mixture(mixture, s):
    """The dense mixture of X_s: means a_s μ, covariances a_s² Σ + σ_s² I."""
    w, m, covs = mixture
    return w, alpha(s) * m, alpha(s) ** 2 * covs + sigma2(s) * jnp.eye(m.shape[1])


def mixture_moments(w, m, covs):
    mean = w @ m
    second = np.einsum("k,kij->ij", w, covs + m[:, :, None] * m[:, None, :])
    return mean, second - np.outer(mean, mean)


@functools.cache
def numpyro_log_prob(name):
    """numpyro's MixtureSameFamily(Categorical, MultivariateNormal) of the dense mixture."""
    mixture = dense_mixture(target(name))

    def at(x, s):
        w, m, covs = noised_mixture(mixture, s)
        components = dist.MultivariateNormal(m, covariance_matrix=covs)
        return dist.MixtureSameFamily(dist.Categorical(probs=w), components).log_prob(x)

    return np.asarray(jax.jit(jax.vmap(at))(points(name), jnp.asarray(TIMES)))


def row_relative_error(a, b):
    return np.max(np.linalg.norm(a - b, axis=1) / np.linalg.norm(b, axis=1))


@pytest.mark.parametrize("s", TIMES)
@pytest.mark.parametrize("name", NAMES)
def test_score_is_the_gradient_of_log_prob(name, s):
    _, score, _, grad = (f[TIMES.index(s)] for f in fields(name))
    assert row_relative_error(score, grad) < 1e-8


@pytest.mark.parametrize("s", TIMES)
@pytest.mark.parametrize("name", NAMES)
def test_tweedie(name, s):
    """posterior_mean is computed from the component posteriors, not from the score."""
    i = TIMES.index(s)
    _, score, posterior_mean, _ = (f[i] for f in fields(name))
    tweedie = (points(name)[i] + sigma2(s) * score) / alpha(s)
    assert row_relative_error(tweedie, posterior_mean) < 1e-8


@pytest.mark.parametrize("s", TIMES)
@pytest.mark.parametrize("name", NUMPYRO_NAMES)
def test_log_prob_matches_numpyro(name, s):
    i = TIMES.index(s)
    np.testing.assert_allclose(
        fields(name)[0][i], numpyro_log_prob(name)[i], rtol=1e-10, atol=1e-10
    )


@pytest.mark.parametrize("s", SAMPLE_TIMES[:-1])
@pytest.mark.parametrize("name", NAMES)
def test_samples_have_the_analytic_moments(name, s):
    """Mean per coordinate, trace, and the variances along the analytic covariance's extreme
    eigenvectors and a random direction, within 4 standard errors. The smallest eigenvalue is
    where a wrong covariance shows most, against the spread of the means that fills the trace."""
    t = target(name)
    x = samples(name)[SAMPLE_TIMES.index(s)]
    mean, cov = mixture_moments(*noised_mixture(dense_mixture(t), s))
    se_mean = x.std(0, ddof=1) / np.sqrt(N_SAMPLES)
    assert np.all(np.abs(x.mean(0) - mean) <= 4 * se_mean + 1e-12)
    centred = x - x.mean(0)
    eigenvectors = np.linalg.eigh(cov)[1]
    directions = [
        eigenvectors[:, 0],
        eigenvectors[:, -1],
        np.random.default_rng(31).normal(size=t.d),
    ]
    stats = [np.sum(centred**2, axis=1)] + [(centred @ u) ** 2 for u in directions]
    expected = [np.trace(cov)] + [u @ cov @ u for u in directions]
    for stat, value in zip(stats, expected, strict=True):
        assert abs(stat.mean() - value) <= 4 * stat.std(ddof=1) / np.sqrt(N_SAMPLES) + 1e-12


def test_isometries_are_haar():
    """Orthonormal columns, and E Q = 0, which QR without the sign fix fails (R_11 has one sign)."""
    q = np.asarray(jax.vmap(lambda k: haar_isometry(k, 3, 2))(jax.random.split(key(50), 4000)))
    gram = np.einsum("nij,nik->njk", q, q)
    np.testing.assert_allclose(gram, np.broadcast_to(np.eye(2), gram.shape), atol=1e-12)
    assert np.all(np.abs(q.mean(0)) <= 4 * q.std(0) / np.sqrt(len(q)))


def test_component_covariances_have_the_asked_rank():
    full, diagonal = target("gmm_full_low_rank"), target("gmm_diagonal")
    covs = dense_mixture(full)[2]
    assert [np.linalg.matrix_rank(c, tol=1e-12) for c in covs] == [2, 2, 2]
    assert np.all(full.eigvals >= 0) and full.intrinsic_dim == 2
    assert np.all(np.sum(diagonal.eigvals > 0, axis=1) == 3)


def test_normalisations():
    mean, cov = mixture_moments(*dense_mixture(target("gmm_full_normalised")))
    np.testing.assert_allclose(mean, 0.0, atol=1e-12)
    assert np.isclose(np.trace(cov), 4.0, rtol=1e-12)
    pi = mixture_1d([0.3, 0.7], [-1.0, 1.5], [0.05, 0.4], normalise=True)
    mean, var = mixture_moments(*dense_mixture(pi))
    assert np.isclose(mean[0], 0.0, atol=1e-12) and np.isclose(var[0, 0], 1.0, rtol=1e-12)


def test_lcw_means_have_the_norm_and_span():
    for K, d, span in [(3, 6, 3), (8, 4, 4)]:
        t = lcw_gmm(key(40), d, K, 2.5)
        np.testing.assert_allclose(np.linalg.norm(t.means, axis=1), 2.5, rtol=1e-12)
        assert np.linalg.matrix_rank(t.means) == span


def test_normalised_sphere_cloud_has_diameter_one_through_the_origin():
    """Points on the sphere |x − c| = 1/2 with |c| = 1/2 satisfy |x|² = 2 x·c: solve for c."""
    x = np.asarray(target("cloud_sphere").means)
    distances = np.linalg.norm(x[:, None] - x[None], axis=-1)
    assert distances.max() <= 1.0 + 1e-12
    c, *_ = np.linalg.lstsq(2 * x, np.sum(x**2, axis=1), rcond=None)
    np.testing.assert_allclose(np.linalg.norm(x - c, axis=1), 0.5, rtol=1e-10)
    assert np.isclose(np.linalg.norm(c), 0.5, rtol=1e-10)


def test_normalised_torus_has_diameter_one_through_the_origin():
    """Each circle plane: radius r = 1/(2√k) about (r, 0), so (0, 0) is on it and the diameter
    2r√k is 1; the embedded cloud keeps its distances."""
    k, r = 3, 0.5 / np.sqrt(3)
    planes = np.asarray(torus(key(41), 500, k, 7.0, True)).reshape(500, k, 2)
    np.testing.assert_allclose(np.linalg.norm(planes - [r, 0.0], axis=-1), r, rtol=1e-12)
    x = np.asarray(point_cloud(key(41), 8, k, 500, "torus", normalise=True).means)
    distances = np.linalg.norm(x[:, None] - x[None], axis=-1)
    assert 0.9 < distances.max() <= 1.0 + 1e-12


def test_clouds_lie_on_their_manifolds():
    sphere = point_cloud(key(43), 6, 3, 50, "sphere", radius=2.0)
    np.testing.assert_allclose(np.linalg.norm(sphere.means, axis=1), 2.0, rtol=1e-12)
    circles = target("cloud_torus")  # (S¹_0.7)^3: |x|² = 3 · 0.7²
    np.testing.assert_allclose(np.linalg.norm(circles.means, axis=1), 0.7 * np.sqrt(3), rtol=1e-12)
    flat = point_cloud(key(44), 6, 2, 50, "subspace")
    assert np.linalg.matrix_rank(flat.means) == 2
    assert [c.intrinsic_dim for c in (sphere, circles, flat)] == [3, 3, 2]


def test_cloud_samples_at_time_zero_are_its_points():
    x = samples("cloud_torus")[0, :50]
    nearest = np.min(
        np.linalg.norm(x[:, None] - target("cloud_torus").means[None], axis=-1), axis=1
    )
    assert np.all(nearest == 0.0)


def config(name, **changes):
    """The family's config file with some keys changed, struct like Hydra's."""
    c = OmegaConf.load(CONFIGS / f"{name}.yaml")
    c.merge_with(changes)
    OmegaConf.set_struct(c, True)
    return c


@pytest.mark.parametrize("name", FAMILIES)
def test_config_files_validate_and_build(name):
    c = config(name)
    TARGETS[name].validate(c)
    t = TARGETS[name].build(c)
    assert (t.name, t.d, t.K) == (name, c.d, c.K)
    assert all(isinstance(v, int) for v in (t.d, t.intrinsic_dim, t.K))
    assert isinstance(t.normalisation, str)


@pytest.mark.parametrize(
    "name, changes",
    [
        ("gmm", {"K": 2, "weights": [0.5, 0.5 + 1e-12], "scale": [0.0, 1.0]}),
        ("gmm", {"covariance": "full", "intrinsic_dim": 3, "normalise": True}),
        ("point_cloud", {"manifold": "sphere", "intrinsic_dim": 9}),
        ("point_cloud", {"manifold": "torus", "intrinsic_dim": 5, "normalise": True}),
        ("subspace", {"intrinsic_dim": 10, "K": 2, "covariance": "diagonal"}),
        ("product", {"intrinsic_dim": 10, "K": 1, "means": [0.0], "stds": [0.0]}),
    ],
)
def test_edge_configs_are_accepted(name, changes):
    c = config(name, **changes)
    TARGETS[name].validate(c)
    TARGETS[name].build(c)


@pytest.mark.parametrize(
    "name, changes, bad_key",
    [
        ("gmm", {"K": 0}, "target.K"),
        ("gmm", {"K": 3, "weights": [0.5, 0.7, -0.2]}, "target.weights"),
        ("gmm", {"K": 3, "weights": [0.2, 0.3, 0.4]}, "target.weights"),
        ("gmm", {"K": 2, "weights": [0.5, 0.5 + 1e-8]}, "target.weights"),
        ("gmm", {"K": 3, "weights": [0.5, 0.5]}, "target.weights"),
        ("gmm", {"scale": -0.1}, "target.scale"),
        ("gmm", {"K": 2, "scale": [0.5, -0.1]}, "target.scale"),
        ("gmm", {"K": 2, "scale": [0.5]}, "target.scale"),
        ("gmm", {"covariance": "full", "intrinsic_dim": 11}, "target.intrinsic_dim"),
        ("gmm", {"covariance": "isotropic", "intrinsic_dim": 3}, "target.intrinsic_dim"),
        ("gmm", {"covariance": "banded"}, "target.covariance"),
        ("lcw_gmm", {"K": 0}, "target.K"),
        ("lcw_gmm", {"mean_norm": -1.0}, "target.mean_norm"),
        ("point_cloud", {"K": 0}, "target.K"),
        ("point_cloud", {"manifold": "subspace", "intrinsic_dim": 11}, "target.intrinsic_dim"),
        ("point_cloud", {"manifold": "sphere", "intrinsic_dim": 10}, "target.intrinsic_dim"),
        ("point_cloud", {"manifold": "torus", "intrinsic_dim": 6}, "target.intrinsic_dim"),
        ("point_cloud", {"radius": 0.0}, "target.radius"),
        ("point_cloud", {"radius": -1.0}, "target.radius"),
        ("point_cloud", {"manifold": "cube"}, "target.manifold"),
        ("point_cloud", {"manifold": "subspace", "normalise": True}, "target.normalise"),
        ("subspace", {"intrinsic_dim": 11}, "target.intrinsic_dim"),
        ("subspace", {"K": 0}, "target.K"),
        ("subspace", {"K": 2, "weights": [1.2, -0.2]}, "target.weights"),
        ("subspace", {"scale": -1.0}, "target.scale"),
        ("product", {"intrinsic_dim": 11}, "target.intrinsic_dim"),
        ("product", {"K": 0}, "target.K"),
        ("product", {"weights": [1.5, -0.5]}, "target.weights"),
        ("product", {"weights": [0.5, 0.6]}, "target.weights"),
        ("product", {"weights": [1.0]}, "target.weights"),
        ("product", {"means": [0.0]}, "target.means"),
        ("product", {"stds": [0.3, -0.3]}, "target.stds"),
    ],
)
def test_bad_configs_raise_one_line_naming_the_key(name, changes, bad_key):
    with pytest.raises(ConfigError) as error:
        TARGETS[name].validate(config(name, **changes))
    message = str(error.value)
    assert "\n" not in message and message.startswith(f"{bad_key}: ")
