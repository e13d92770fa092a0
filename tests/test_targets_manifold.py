"""The `sphere` and `torus` targets and the Bessel functions under them.

References are independent of the code under test: scipy's `ive` (Amos), the power series of I_ν
summed in logs, closed forms at half-integer orders, Gauss–Jacobi quadrature of the von Mises–Fisher
posterior, and radial quadrature of the densities.
"""

import functools
import math
from fractions import Fraction
from functools import partial
from pathlib import Path
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special as sp
from omegaconf import OmegaConf

import diffusion_rates  # noqa: F401  (float64)
from diffusion_rates.process import alpha, sigma2
from diffusion_rates.targets import TARGETS, bessel
from diffusion_rates.targets.sphere import sphere
from diffusion_rates.targets.torus import torus
from diffusion_rates.validation import ConfigError

ORDERS = (-0.5, 0.0, 0.5, 1.0, 10.0, 29.5, 30.0, 49.5, 100.0, 499.5, 500.0)
ARGS = np.array([1e-8, 1e-3, 0.1, 1.0, 10.0, 50.0, 300.0, 1e3, 1e4, 1e5, 1e6])
TIMES = (1e-4, 1e-2, 0.3, 3.0)
DIMS = (1, 2, 10, 100)
FAMILIES = {"sphere": sphere, "torus": torus}


# ---------------------------------------------------------------- Bessel references


def series_log_terms(nu, x):
    """log of the terms (x/2)^{2j+ν} / (j! Γ(j+ν+1)) of the power series of I_ν(x), j < 4000
    (enough for x <= 1e3); all positive, so summing them in logs neither cancels nor underflows."""
    j = np.arange(4000)
    return (2 * j + nu) * np.log(x / 2) - sp.gammaln(j + 1) - sp.gammaln(j + nu + 1)


def reference_log_ive(nu, x):
    """log(I_ν(x) e^{-x}): scipy's log ive where ive is a normal float, else (it underflows at
    small x and large ν) the series."""
    value = sp.ive(nu, x)
    return np.log(value) if value > 1e-300 else sp.logsumexp(series_log_terms(nu, x)) - x


SERIES_MAX = 300.0  # the series ratio below is exact to ~1e-15 up to here; scipy's to ~1e-13


def reference_ratio(nu, x):
    """I_{ν+1}/I_ν: for x <= SERIES_MAX, (x/2) Σ_j w_j/(j+ν+1) with w the normalised terms of
    I_ν's series (all positive; not a difference of two logs of size 1e4, which would lose 1e-12);
    above, the ratio of scipy's ive."""
    if x > SERIES_MAX:
        return sp.ive(nu + 1, x) / sp.ive(nu, x)
    weights = sp.softmax(series_log_terms(nu, x))
    return x / 2 * np.sum(weights / (np.arange(len(weights)) + nu + 1))


def test_debye_polynomials_match_dlmf():
    """u_1, u_2, u_3 as printed in DLMF 10.41.10."""
    u = bessel.debye_polynomials(4)
    assert u[1] == [0, Fraction(3, 24), 0, Fraction(-5, 24)]
    assert u[2] == [0, 0, Fraction(81, 1152), 0, Fraction(-462, 1152), 0, Fraction(385, 1152)]
    c = [Fraction(n, 414720) for n in (30375, -369603, 765765, -425425)]
    assert u[3] == [0, 0, 0, c[0], 0, c[1], 0, c[2], 0, c[3]]


@functools.cache
def evaluated(nu):
    """At x = 0 and ARGS, under one jit per order: log_ive and its derivative, R_ν, log ĩ_ν and
    its (custom) derivative, and forward-mode autodiff of the computation of log ĩ_ν itself."""

    def values(x):
        def raw(x):
            return bessel._log_ive_normalised_and_ratio(nu, x)[0]

        ones = jnp.ones_like(x)  # the functions act elementwise: one JVP gives every derivative
        log_ive, d_log_ive = jax.jvp(partial(bessel.log_ive, nu), (x,), (ones,))
        normalised, d_normalised = jax.jvp(partial(bessel.log_ive_normalised, nu), (x,), (ones,))
        return dict(
            log_ive=log_ive,
            d_log_ive=d_log_ive,
            ratio=bessel.bessel_ratio(nu, x),
            normalised=normalised,
            d_normalised=d_normalised,
            d_raw=jax.jvp(raw, (x,), (ones,))[1],
        )

    out = jax.jit(values)(jnp.concatenate([jnp.zeros(1), jnp.asarray(ARGS)]))
    return {name: np.asarray(v) for name, v in out.items()}


@pytest.mark.parametrize("nu", ORDERS)
def test_log_ive_matches_scipy_and_series(nu):
    ref = np.array([reference_log_ive(nu, x) for x in ARGS])
    # Relative accuracy of I_ν is the absolute accuracy of its log; a log of size 6000 (ν = 500,
    # x = 1e-3) is itself only known to ~1e-12 in float64, hence the second term.
    np.testing.assert_allclose(evaluated(nu)["log_ive"][1:], ref, rtol=1e-15, atol=2e-12)


@pytest.mark.parametrize("nu", ORDERS)
def test_ratio_matches_series_and_scipy(nu):
    got = evaluated(nu)["ratio"][1:]
    ref = np.array([reference_ratio(nu, x) for x in ARGS])
    series = ARGS <= SERIES_MAX
    np.testing.assert_allclose(got[series], ref[series], rtol=1e-14)
    # scipy's ive pair, each good to ~1e-14 relative, limits the comparison above.
    np.testing.assert_allclose(got[~series], ref[~series], rtol=2e-13)


def test_half_integer_orders_match_closed_forms():
    """I_{-1/2}(x) = √(2/πx) cosh x and I_{1/2}(x) = √(2/πx) sinh x, exact on the whole range."""
    x = ARGS
    pre = 0.5 * np.log(2 / (np.pi * x))
    cases = {
        -0.5: (pre + np.log1p(np.exp(-2 * x)) - np.log(2), np.tanh(x)),
        0.5: (pre + np.log(-np.expm1(-2 * x) / 2), 1 / np.tanh(x) - 1 / x),
    }
    for nu, (log_ref, ratio_ref) in cases.items():
        got = evaluated(nu)
        # At x = 1e6 the Debye terms and the recurrence's sum (both ≈ M log(x/M) ≈ 300) cancel to
        # a log of size 8, leaving ~1e-13; R_M is the exponential of a difference of two of them.
        np.testing.assert_allclose(got["log_ive"][1:], log_ref, rtol=1e-15, atol=5e-13)
        # coth x - 1/x cancels for small x: compare the ratio where the closed form is accurate.
        big = x >= 1
        np.testing.assert_allclose(got["ratio"][1:][big], ratio_ref[big], rtol=1e-14)


@pytest.mark.parametrize("nu", ORDERS)
def test_bessel_values_at_zero(nu):
    """ĩ_ν(0) = 1, R_ν(0) = 0, d/dx log ĩ_ν(0) = R_ν(0) - 1 = -1; log I_ν(0) = -inf, 0, +inf."""
    got = {name: v[0] for name, v in evaluated(nu).items()}
    assert abs(got["normalised"]) < 1e-15 and got["ratio"] == 0.0
    assert abs(got["d_normalised"] + 1.0) < 1e-15
    if nu == 0:
        assert abs(got["log_ive"]) < 1e-15
    else:
        assert got["log_ive"] == -math.inf * np.sign(nu)


@pytest.mark.parametrize("nu", ORDERS)
def test_custom_derivative_is_the_derivative(nu):
    """The custom JVP R_ν - 1 of log ĩ_ν equals autodiff of the computation itself, and the
    derivative of log_ive is R_ν + ν/x - 1 with R_ν from scipy."""
    got = evaluated(nu)
    np.testing.assert_allclose(got["d_normalised"], got["d_raw"], rtol=0, atol=1e-14)
    ref = np.array([reference_ratio(nu, v) for v in ARGS]) + nu / ARGS - 1
    np.testing.assert_allclose(got["d_log_ive"][1:], ref, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------- targets


N = 4096  # samples per call: every compiled method sees this one shape


def key(seed):
    """An RBG key: target.sample compiles in half the time that threefry's unrolled rounds take."""
    return jax.random.key(seed, impl="rbg")


@functools.cache
def make(family, k, normalisation="centred", rotate=True):
    """The family at intrinsic dimension k in D = span + 3, with diameter 1 (r = 1/(2√g))."""
    groups = 1 if family == "sphere" else k
    span = k + 1 if family == "sphere" else 2 * k
    radius = 0.5 / math.sqrt(groups)
    return FAMILIES[family](span + 3, k, radius, normalisation, rotate, seed=k)


@functools.cache
def compiled(family, k, normalisation):
    """The target, its sampler (N points) and `evaluate(x, s)` = log_prob, score, gradient of
    log_prob and posterior mean: each jitted once for all tests and all s (s is traced), and
    returning numpy arrays (eager jax on new shapes would compile op by op)."""
    target = make(family, k, normalisation)

    def evaluate(x, s):
        log_prob, pullback = jax.vjp(lambda x: target.log_prob(x, s), x)
        return dict(
            log_prob=log_prob,
            score=target.score(x, s),
            grad=pullback(jnp.ones_like(log_prob))[0],  # the gradient of Σ log_prob
            posterior_mean=target.posterior_mean(x, s),
        )

    sample, evaluate = jax.jit(lambda key, s: target.sample(key, N, s)), jax.jit(evaluate)
    return SimpleNamespace(
        target=target,
        sample=lambda key, s: np.asarray(sample(key, s)),
        evaluate=lambda x, s: {name: np.asarray(v) for name, v in evaluate(x, s).items()},
    )


def relative(a, b):
    """Largest per-point ‖a - b‖/‖b‖."""
    return np.max(np.linalg.norm(a - b, axis=-1) / np.linalg.norm(b, axis=-1))


def coefficients(s):
    """a_s and σ_s² as floats, so that the tests' arithmetic stays in numpy."""
    return float(alpha(s)), float(sigma2(s))


@pytest.mark.parametrize("k", DIMS)
@pytest.mark.parametrize("family", FAMILIES)
def test_score_is_gradient_of_log_prob_and_tweedie_holds(family, k):
    f = compiled(family, k, "pad")
    # 1e-7: κ up to 1e6, the far end of the Bessel range.
    for i, s in enumerate((1e-7, *TIMES)):
        x = f.sample(key(i), s)
        e = f.evaluate(x, s)
        assert relative(e["grad"], e["score"]) < 1e-8
        a, s2 = coefficients(s)
        tweedie = (x + s2 * e["score"]) / a
        assert relative(tweedie, e["posterior_mean"]) < 1e-8


@pytest.mark.parametrize("family", FAMILIES)
def test_finite_at_the_centre_of_a_block(family):
    """At x - a c = 0 the score is 0 (by symmetry), the posterior mean is c and nothing is NaN."""
    f = compiled(family, 2, "pad")
    s = 0.3
    a, _ = coefficients(s)
    x = np.broadcast_to(a * np.asarray(f.target.centre), (N, f.target.d))
    e = f.evaluate(x, s)
    assert np.all(np.isfinite(e["log_prob"]))
    np.testing.assert_allclose(e["score"], 0.0, atol=1e-15)
    np.testing.assert_allclose(e["grad"], 0.0, atol=1e-15)
    np.testing.assert_allclose(e["posterior_mean"], x / a, atol=1e-15)


@functools.cache
def jacobi_rule(m):
    return sp.roots_jacobi(3000, (m - 3) / 2, (m - 3) / 2)


def vmf_mean_length(m, kappa):
    """E[t] for the density ∝ e^{κt} (1 - t²)^{(m-3)/2} on [-1, 1] of t = U·e, U uniform on
    S^{m-1}: the length of the von Mises–Fisher mean, by Gauss–Jacobi quadrature (no Bessel)."""
    t, w = jacobi_rule(m)
    logw = np.log(w)[None] + np.asarray(kappa)[:, None] * t[None]
    return np.sum(sp.softmax(logw, axis=1) * t, axis=1)


@pytest.mark.parametrize("k", DIMS)
@pytest.mark.parametrize("family", FAMILIES)
def test_posterior_mean_matches_quadrature(family, k):
    """Per block, m_s(x) - c = r E[t | κ] y/|y| with E[t | κ] by quadrature: a check of the
    posterior mean (and of R_ν) that uses no Bessel function."""
    f = compiled(family, k, "pad")
    target, n = f.target, 8
    embedding, centre = np.asarray(target.embedding), np.asarray(target.centre)
    for i, s in enumerate(TIMES):
        x = f.sample(key(i), s)
        got, x = f.evaluate(x, s)["posterior_mean"][:n], x[:n]
        a, s2 = coefficients(s)
        y = ((x - a * centre) @ embedding).reshape(n, target.groups, target.group_dim)
        rho = np.linalg.norm(y, axis=-1, keepdims=True)
        kappa = a * target.radius * rho.ravel() / s2
        length = vmf_mean_length(target.group_dim, kappa).reshape(rho.shape)
        expected = centre + target.radius * (length * y / rho).reshape(n, -1) @ embedding.T
        assert relative(got, expected) < 1e-10


def test_closed_forms_of_the_circle_and_the_two_sphere():
    """Torus plane: exp(-(ρ² + a²r²)/(2σ²)) I₀(κ)/(2πσ²) (docs/mathematics.md, scipy's i0e); S²:
    (2πσ²)^{-3/2} exp(-(ρ² + a²r²)/(2σ²)) sinh(κ)/κ, with κ = a r ρ/σ², r = 1/2."""

    def circle(kappa, s2):
        return np.log(sp.i0e(kappa)) - np.log(2 * np.pi * s2)

    def two_sphere(kappa, s2):
        return np.log(-np.expm1(-2 * kappa) / (2 * kappa)) - 1.5 * np.log(2 * np.pi * s2)

    rng = np.random.default_rng(0)
    for target, bessel_part in ((torus(2, 1), circle), (sphere(3, 2), two_sphere)):
        log_prob = jax.jit(target.log_prob)
        for s in TIMES:
            a, s2 = coefficients(s)
            u = rng.normal(size=(16, target.d))
            x = a * 0.5 * u / np.linalg.norm(u, axis=1, keepdims=True)
            x = x + math.sqrt(s2) * rng.normal(size=x.shape)
            rho = np.linalg.norm(x, axis=-1)
            ref = -((rho - a * 0.5) ** 2) / (2 * s2) + bessel_part(a * 0.5 * rho / s2, s2)
            # Absolute in the log (relative in the density): at s = 1e-4 terms of size 7 cancel.
            np.testing.assert_allclose(log_prob(x, s), ref, rtol=0, atol=1e-13)


@pytest.mark.parametrize("k", DIMS)
@pytest.mark.parametrize("family", FAMILIES)
def test_block_density_integrates_to_one(family, k):
    """∫_0^∞ q(ρ) |S^{m-1}| ρ^{m-1} dρ = 1 for one block, by composite Gauss–Legendre in ρ
    (N/16 panels of 16 nodes); log_prob is read on the span with every block at radius ρ, and the
    Gaussian complement's normaliser added back."""
    f = compiled(family, k, "pad")
    target = f.target
    g, m = target.groups, target.group_dim
    nodes, weights = np.polynomial.legendre.leggauss(16)
    log_sphere_area = math.log(2) + 0.5 * m * math.log(math.pi) - math.lgamma(m / 2)
    direction = np.asarray(target.embedding)[:, ::m].sum(axis=1)  # first axis of every block
    for s in TIMES:
        a, s2 = coefficients(s)
        top = a * target.radius + math.sqrt(s2) * (math.sqrt(m) + 12)
        edges = np.linspace(0, top, N // 16 + 1)
        half = np.diff(edges)[:, None] / 2
        rho = (edges[:-1, None] + half * (nodes + 1)).ravel()
        w = (half * weights).ravel()
        x = a * np.asarray(target.centre) + rho[:, None] * direction
        off_span = 0.5 * (target.d - g * m) * math.log(2 * math.pi * s2)
        log_block = (np.asarray(f.evaluate(x, s)["log_prob"]) + off_span) / g
        total = np.sum(w * np.exp(log_block + log_sphere_area + (m - 1) * np.log(rho)))
        assert abs(total - 1) < 1e-10, (s, total)


# Centred targets: the same code with c = 0 (so fewer cases; each costs a compilation).
CENTRED = [("sphere", 2, "centred"), ("torus", 10, "centred")]


@pytest.mark.parametrize(
    ("family", "k", "normalisation"),
    [(family, k, "pad") for family in FAMILIES for k in DIMS] + CENTRED,
)
def test_samples_have_the_analytic_moments(family, k, normalisation):
    """E X_s = a c and E|X_s|² = a²(|c|² + g r²) + D σ², within 4 standard errors; the mean is
    checked along the first span axis (where c lies) and a fixed random direction."""
    f = compiled(family, k, normalisation)
    target = f.target
    centre = np.asarray(target.centre)
    directions = np.stack([target.embedding[:, 0], np.random.default_rng(9).normal(size=target.d)])
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    for i, s in enumerate((0.0, *TIMES)):
        a, s2 = coefficients(s)
        x = f.sample(key(100 + i), s)
        proj = x @ directions.T
        se = proj.std(axis=0) / math.sqrt(N)
        assert np.all(np.abs(proj.mean(axis=0) - a * directions @ centre) < 4 * se)
        sq = np.sum(x**2, axis=1)
        second = a**2 * (centre @ centre + target.groups * target.radius**2) + target.d * s2
        assert abs(sq.mean() - second) < 4 * sq.std() / math.sqrt(N) + 1e-12


@pytest.mark.parametrize("family", FAMILIES)
def test_clean_samples_lie_on_the_manifold_and_pad_contains_zero(family):
    f = compiled(family, 2, "pad")
    target = f.target
    g, m = target.groups, target.group_dim
    embedding, centre = np.asarray(target.embedding), np.asarray(target.centre)
    for x in (f.sample(key(0), 0.0), np.zeros((1, target.d))):
        y = (x - centre) @ embedding
        np.testing.assert_allclose(np.linalg.norm(y.reshape(-1, g, m), axis=-1), target.radius)
        np.testing.assert_allclose(x - centre, y @ embedding.T, atol=1e-15)  # nothing off the span
    assert target.diameter == pytest.approx(1.0)


@pytest.mark.parametrize(("family", "k", "normalisation"), CENTRED)
def test_pad_is_the_centred_target_translated(family, k, normalisation):
    """q_s(x) = q̃_s(x - a c), ∇log q_s(x) = ∇log q̃_s(x - a c), m_s(x) = c + m̃_s(x - a c)."""
    pad, centred = compiled(family, k, "pad"), compiled(family, k, normalisation)
    s = 0.2
    x = pad.sample(key(0), s)
    shift = coefficients(s)[0] * np.asarray(pad.target.centre)
    e, e_centred = pad.evaluate(x, s), centred.evaluate(x - shift, s)
    np.testing.assert_allclose(e["log_prob"], e_centred["log_prob"], rtol=1e-13)
    np.testing.assert_allclose(e["score"], e_centred["score"], rtol=1e-12)
    np.testing.assert_allclose(
        e["posterior_mean"], np.asarray(pad.target.centre) + e_centred["posterior_mean"], rtol=1e-12
    )


def test_embedding_is_an_isometry_or_the_first_axes():
    rotated, plain = make("torus", 3), make("torus", 3, rotate=False)
    np.testing.assert_allclose(rotated.embedding.T @ rotated.embedding, np.eye(6), atol=1e-14)
    assert not np.allclose(rotated.embedding, np.eye(9, 6))
    np.testing.assert_array_equal(plain.embedding, np.eye(9, 6))


# ---------------------------------------------------------------- configs


CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "target"


def config(family, **changes):
    """configs/target/<family>.yaml with some values changed."""
    c = OmegaConf.load(CONFIGS / f"{family}.yaml")
    for name, value in changes.items():
        c[name] = value
    return c


@pytest.mark.parametrize("family", FAMILIES)
def test_config_files_build_the_target(family):
    c = config(family)
    TARGETS[family].validate(c)
    target = TARGETS[family].build(c)
    assert (target.name, target.normalisation, target.K) == (family, c.normalisation, 1)
    assert (target.d, target.intrinsic_dim) == (c.d, c.intrinsic_dim)


BAD = [
    ("sphere", {"radius": -1}, "target.radius"),
    ("sphere", {"radius": 0}, "target.radius"),
    ("sphere", {"intrinsic_dim": 0}, "target.intrinsic_dim"),
    ("sphere", {"d": 5, "intrinsic_dim": 5}, "target.intrinsic_dim"),
    ("sphere", {"normalisation": "pad", "radius": 0.6}, "target.radius"),
    ("sphere", {"normalisation": "unit"}, "target.normalisation"),
    ("sphere", {"rotate": "yes"}, "target.rotate"),
    ("sphere", {"seed": -1}, "target.seed"),
    ("sphere", {"d": 0}, "target.d"),
    ("torus", {"radius": -1}, "target.radius"),
    ("torus", {"intrinsic_dim": 0}, "target.intrinsic_dim"),
    ("torus", {"d": 11, "intrinsic_dim": 6}, "target.intrinsic_dim"),
    ("torus", {"normalisation": "pad", "intrinsic_dim": 4, "radius": 0.3}, "target.radius"),
]


@pytest.mark.parametrize(("family", "changes", "named"), BAD)
def test_bad_config_is_one_line_naming_the_key(family, changes, named):
    with pytest.raises(ConfigError) as error:
        TARGETS[family].validate(config(family, **changes))
    message = str(error.value)
    assert message.startswith(f"{named}:") and "\n" not in message


@pytest.mark.parametrize(
    ("family", "changes"),
    [
        ("sphere", {"d": 5, "intrinsic_dim": 4}),
        ("torus", {"d": 12, "intrinsic_dim": 6}),
        ("torus", {"normalisation": "pad", "intrinsic_dim": 4, "radius": 0.25}),
    ],
)
def test_boundary_configs_are_accepted(family, changes):
    TARGETS[family].validate(config(family, **changes))
