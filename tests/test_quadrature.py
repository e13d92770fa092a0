"""The `quadrature` estimator: exact Gaussian laws, null tests, grid refinement and Monte Carlo.

References are independent of the grid: `exact_gaussian` for a one-component product, the
targets' own log_prob, the chi law in closed form, and `samplers.sample` run on the target's score.
"""

import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import diffusion_rates  # noqa: F401  (float64)
from diffusion_rates.metrics import density_ratio, exact, quadrature
from diffusion_rates.process import ou
from diffusion_rates.samplers import SAMPLERS, sample
from diffusion_rates.schedules import Grid, make_grid
from diffusion_rates.targets.bessel import log_ive_normalised
from diffusion_rates.targets.gaussian import Gaussian
from diffusion_rates.targets.product import mixture_1d, product
from diffusion_rates.targets.sphere import sphere
from diffusion_rates.targets.torus import torus

ALL = ["kl", "kl_reverse", "tv", "w2", "hellinger"]
# One step count and two grid sizes for the whole file, so that the compiled loops are shared:
# `quadrature` on twice the default grid (its floor is then the doubling test), `propagate` on it.
STEPS = 64
DEFAULT = quadrature.DEFAULT_GRID_SIZE
DOUBLE = 2 * DEFAULT
ONE_STEP = ["ei", "ddpm", "ddpm_posterior", "em", "ddim"]


def grid_of(schedule="bbdd", steps=STEPS, delta=1e-3):
    return make_grid(ou(), schedule, 10.0, delta, steps)


def bimodal(d, k):
    """The configs' default product: π = ½ N(−1, 0.3²) + ½ N(1, 0.3²), rotated."""
    factor = mixture_1d([0.5, 0.5], [-1.0, 1.0], [0.3, 0.3])
    return product(jax.random.PRNGKey(0), d, k, factor, True, "none")


def moments(law):
    m = law.masses
    return float(jnp.sum(m * law.y)), float(jnp.sum(m * law.y**2))


# ---------------------------------------------------------------- building blocks


@pytest.mark.parametrize("nu", [0.0, 0.5, 4.5])
def test_bessel_table_matches_the_exact_routine(nu):
    """Below, inside and above the table, against bessel.log_ive_normalised itself."""
    kappa = jnp.concatenate([jnp.zeros(1), jnp.geomspace(1e-6, 1e18, 4001)])
    table = quadrature.bessel_table(nu)
    tabulated = quadrature.tabulated_log_bessel(table, nu, kappa, jnp.log(kappa))
    assert np.max(np.abs(tabulated - log_ive_normalised(nu, kappa))) < 1e-10


@pytest.mark.parametrize("target", [torus(5, 2), sphere(5, 3)], ids=["torus", "sphere"])
@pytest.mark.parametrize("s", [1e-3, 3.0])
def test_radial_reference_is_the_targets_density(target, s):
    """log q_s on a radius, minus the target's log_prob at that radius along one axis of the first
    block, is log(|S^{m−1}| ρ^{m−1}) plus a constant (the other blocks and the complement)."""
    block = quadrature.decompose(target).block
    m = target.group_dim
    ar, sigma = math.exp(-s) * target.radius, math.sqrt(-math.expm1(-2 * s))
    rho = jnp.linspace(max(ar - 6 * sigma, 1e-3), ar + 6 * sigma, 50)
    x = rho[:, None] * target.embedding[:, 0]
    gap = block.log_reference(rho, s) - (m - 1) * jnp.log(rho) - target.log_prob(x, s)
    assert np.ptp(np.asarray(gap)) < 1e-10 * max(1.0, float(jnp.max(jnp.abs(gap))))
    # and the step kernel (tabulated Bessel factor) is the same density with (μ, C²) = (a r, σ²)
    kernel = block.log_kernel(rho, ar, sigma**2)
    assert np.allclose(kernel, block.log_reference(rho, s), rtol=0, atol=1e-9)


@pytest.mark.parametrize("target", [torus(4, 2), sphere(3, 2), bimodal(3, 2)])
def test_target_against_itself_is_within_the_floor(target):
    """q_δ on the grid over its support, measured against q_δ: every block metric is within
    |value(n) − value(n/2)| of zero, up to rounding."""
    block, s = quadrature.decompose(target).block, grid_of().s[-1]

    def values(n):
        law = quadrature.uniform_law(
            block, *block.reference_support(s), n, partial(block.log_reference, s=s)
        )
        return quadrature.block_metrics(block, law, s)

    fine, coarse = values(DOUBLE), values(DEFAULT)
    for metric, value, other in zip(fine._fields, fine, coarse, strict=True):
        expected = 1.0 if metric == "coverage" else 0.0
        assert abs(value - expected) <= abs(value - other) + 1e-12, metric


@pytest.mark.parametrize("target", [torus(4, 1), sphere(3, 2), bimodal(2, 1)])
def test_no_step_leaves_the_initial_law(target):
    """Steps of length 0 (A = 1, B = C = 0) leave N(0, I)'s law: chi(m) radii, with mean
    √2 Γ((m+1)/2)/Γ(m/2) and second moment m, or one N(0, 1) coordinate."""
    block = quadrature.decompose(target).block
    still = Grid(t=np.full(STEPS + 1, 5.0), s=np.full(STEPS + 1, 5.0), beta=np.ones(STEPS + 1))
    law, defect = quadrature.propagate(SAMPLERS["ei"], block, still)
    m = target.group_dim if target.name != "product" else 1
    mean = 0.0 if m == 1 else math.sqrt(2) * math.exp(math.lgamma((m + 1) / 2) - math.lgamma(m / 2))
    assert defect < 1e-12
    assert np.allclose(moments(law), (mean, m), rtol=1e-12, atol=1e-13)


# ---------------------------------------------------------------- against exact laws


@pytest.mark.parametrize(
    ("schedule", "init"), [("bbdd", "standard"), ("uniform", "standard"), ("bbdd", "target")]
)
@pytest.mark.parametrize("name", ONE_STEP)
def test_one_component_product_is_exact_gaussian(name, schedule, init):
    """π = N(μ, v) on 3 of 5 coordinates is the Gaussian N((μ, μ, μ, 0, 0), diag(v, v, v, 0, 0)):
    every metric that exact_gaussian gives agrees to 1e-6 relative (KL to about 1e-10)."""
    mean, var = 0.7, 0.5
    target = product(jax.random.PRNGKey(0), 5, 3, mixture_1d([1.0], [mean], [var**0.5]), False, "")
    gaussian = Gaussian(jnp.array([mean] * 3 + [0.0] * 2), jnp.array([var] * 3 + [0.0] * 2))
    grid = grid_of(schedule)
    metrics = ["kl", "kl_reverse", "w2", "hellinger"]
    result = quadrature.quadrature(SAMPLERS[name], target, grid, metrics, init, DOUBLE)
    reference = exact.exact_gaussian(SAMPLERS[name], gaussian, grid, metrics, init)
    for metric in metrics:
        assert result[metric][0] == pytest.approx(reference[metric][0], rel=1e-6), metric
        assert result[metric][2] < 1e-6 * reference[metric][0], metric


def test_monte_carlo_tv_matches_the_quadrature():
    """One block and no complement: TV by quadrature, and by the Monte Carlo route the estimator
    takes for several blocks, agree within four standard errors."""
    target = bimodal(1, 1)
    grid = grid_of()
    block = quadrature.decompose(target).block
    law, _ = quadrature.propagate(SAMPLERS["ei"], block, grid)
    tv = quadrature.block_metrics(block, law, grid.s[-1]).tv
    mc, stderr = quadrature._tv_monte_carlo(
        block, law, grid.s[-1], 1, jnp.zeros(2**16), jax.random.PRNGKey(3)
    )
    assert abs(mc - tv) < 4 * stderr


def test_delta_zero_with_a_singular_target():
    """At δ = 0 the torus is a point mass in radius: KL infinite, TV and Hellinger 1, and W2 the
    root mean square of ρ − r over the output law."""
    target = torus(2, 1)
    grid = grid_of("uniform", delta=0.0)
    result = quadrature.quadrature(SAMPLERS["ddpm"], target, grid, ALL, grid_size=DOUBLE)
    assert result["kl"][0] == result["kl_reverse"][0] == math.inf
    assert result["tv"][0] == result["hellinger"][0] == 1.0
    block = quadrature.decompose(target).block
    law, _ = quadrature.propagate(SAMPLERS["ddpm"], block, grid, n=DOUBLE)
    w2 = math.sqrt(float(jnp.sum(law.masses * (law.y - target.radius) ** 2)))
    assert result["w2"][0] == pytest.approx(w2, rel=1e-12)


def test_validity():
    assert quadrature.valid(SAMPLERS["ddim"], "torus")
    assert not quadrature.valid(SAMPLERS["sra1"], "sphere")
    assert not quadrature.valid(SAMPLERS["ei"], "gaussian")
    with pytest.raises(ValueError, match="centred"):
        quadrature.quadrature(SAMPLERS["ei"], sphere(4, 2, normalisation="pad"), grid_of(), ["kl"])


def log_concave(d=1):
    """A skewed two-component π close enough to be log-concave: ⅓ N(−0.4, 0.8²) + ⅔ N(0.6, 0.7²)."""
    factor = mixture_1d([1 / 3, 2 / 3], [-0.4, 0.6], [0.8, 0.7])
    return product(jax.random.PRNGKey(0), d, d, factor, False, "")


def mixture_quantile(target, s, u_low, u_high):
    """F_q^{−1} of one coordinate of q_s by bisection, from the lower tail where u_low <= ½ and
    from the upper one (u_high = 1 − u) elsewhere, so that both tails keep their digits."""
    f = target.inner.factor
    a, sd = math.exp(-s), np.sqrt(math.exp(-2 * s) * np.asarray(f.eigvals) + -math.expm1(-2 * s))
    m, w = a * np.asarray(f.means[:, 0]), np.asarray(f.weights)

    def tail(y, sign):
        return np.sum(w * np.asarray(jax.scipy.special.ndtr(sign * (y[:, None] - m) / sd)), 1)

    lower = u_low <= 0.5
    lo, hi = np.full(u_low.shape, -50.0), np.full(u_low.shape, 50.0)
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        below = np.where(lower, tail(mid, 1.0) < u_low, tail(mid, -1.0) > u_high)
        lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
    return 0.5 * (lo + hi)


@pytest.mark.parametrize("name", ["pf_euler", "pf_heun"])
def test_flow_is_the_quantile_map(name):
    """A deterministic increasing flow maps quantiles to quantiles: W2² = ∫ (F(x) − F_q^{−1}(Φ(x)))²
    φ(x) dx with F the sampler's own map (samplers.sample on the nodes x), against the
    quadrature's W2 to 1e-6 relative, its floor under 1e-5 of it."""
    target, grid = log_concave(), grid_of("uniform")
    x = np.linspace(-8.5, 8.5, 8001)
    mapped = sample(
        SAMPLERS[name], target.score, grid, jnp.asarray(x)[:, None], jax.random.PRNGKey(0)
    )[:, 0]
    assert np.all(np.diff(mapped) > 0)
    u_low, u_high = (np.asarray(jax.scipy.special.ndtr(v)) for v in (x, -x))
    quantile = mixture_quantile(target, grid.s[-1], u_low, u_high)
    density = np.exp(-0.5 * x**2) / math.sqrt(2 * math.pi)
    w2 = math.sqrt(np.trapezoid((np.asarray(mapped) - quantile) ** 2 * density, x))
    got, _, floor = quadrature.quadrature(SAMPLERS[name], target, grid, ["w2"])["w2"]
    assert got == pytest.approx(w2, rel=1e-6)
    assert floor < 1e-5 * got


@pytest.mark.slow  # 2^20 paths; the node-doubling and flow tests stay in make test
def test_sra1_law_matches_monte_carlo():
    """SRA1's output CDF at nine points against 2^20 runs of samplers.sample, within 4.5 standard
    errors each; and its W2 moves by under 1e-8 relative, and under a tenth of its floor, with
    twice the Gauss–Hermite nodes."""
    target, grid, sampler = log_concave(), grid_of("uniform", steps=16), SAMPLERS["sra1"]
    block = quadrature.decompose(target).block
    law, _ = quadrature.propagate(sampler, block, grid)
    n = 2**20
    y0 = jax.random.normal(jax.random.PRNGKey(1), (n, 1))
    y = np.asarray(sample(sampler, target.score, grid, y0, jax.random.PRNGKey(2))[:, 0])
    cdf = np.asarray(quadrature._cumulative(jnp.exp(law.log_g), law.h))  # in u = y
    for point in np.linspace(-2.0, 2.0, 9):
        expected = float(np.interp(point, np.asarray(law.y), cdf))
        bound = 4.5 * math.sqrt(expected * (1 - expected) / n)
        assert abs(np.mean(y <= point) - expected) < bound, point
    w2, _, floor = quadrature.quadrature(sampler, target, grid, ["w2"])["w2"]
    finer = dict(quadrature.NOISE_NODES, sra1=quadrature.sra1_nodes(2 * quadrature.SRA1_NODES))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(quadrature, "NOISE_NODES", finer)
        refined = quadrature.quadrature(sampler, target, grid, ["w2"])["w2"][0]
    assert refined != w2  # the finer nodes were used
    assert abs(refined - w2) < min(1e-8 * w2, 0.1 * floor)


# ---------------------------------------------------------------- refinement and Monte Carlo

TARGETS = {
    "product-D3-k1": lambda: bimodal(3, 1),
    "product-D3-k2": lambda: bimodal(3, 2),
    "product-D50-k1": lambda: bimodal(50, 1),
    "product-D50-k2": lambda: bimodal(50, 2),
    "torus-D3-k1": lambda: torus(3, 1),
    "torus-D50-k1": lambda: torus(50, 1),
    "torus-D50-k2": lambda: torus(50, 2),
    "sphere-D3-k1": lambda: sphere(3, 1),
    "sphere-D3-k2": lambda: sphere(3, 2),
    "sphere-D50-k1": lambda: sphere(50, 1),
    "sphere-D50-k2": lambda: sphere(50, 2),
    "sphere-D50-k10": lambda: sphere(50, 10),
}
# At D = 50 the blocks are those of D = 3 (only the exact Gaussian complement grows), so those
# cases run with the slow tests; the sphere at k = 10 needs D = 50 and stays.
REFINEMENT_CASES = [
    pytest.param(name, marks=[pytest.mark.slow] if name.endswith(("D50-k1", "D50-k2")) else [])
    for name in TARGETS
]


@pytest.mark.parametrize("name", ["ddpm", "ei"])
@pytest.mark.parametrize("schedule", ["bbdd", "uniform"])
@pytest.mark.parametrize("target", REFINEMENT_CASES)
def test_doubling_the_default_grid_changes_kl_by_under_one_percent(target, schedule, name):
    """quadrature at 2n reports |KL(2n) − KL(n)|, n the default grid, as its floor."""
    kl, _, floor = quadrature.quadrature(
        SAMPLERS[name], TARGETS[target](), grid_of(schedule), ["kl"], grid_size=DOUBLE
    )["kl"]
    assert floor < 0.01 * kl


@pytest.mark.parametrize("d", [3, 50])
@pytest.mark.parametrize("family", [torus, sphere])
def test_quadrature_agrees_with_density_ratio(family, d):
    """An independent route: KL by bias-corrected density ratios on 2048 points of q_δ, 16 paths
    each, against the quadrature, within 3 standard errors (ddpm_posterior, N = 256, where the
    log-weight spread is small; at D = 50 the exact Gaussian complement enters both)."""
    target, grid, sampler = family(d, 1), grid_of(steps=256, delta=1e-2), SAMPLERS["ddpm_posterior"]
    kl, _, floor = quadrature.quadrature(sampler, target, grid, ["kl"])["kl"]
    got = density_ratio.estimate(
        sampler,
        target.score,
        target,
        grid,
        2048,
        jax.random.PRNGKey(0),
        options=density_ratio.Options(paths=16, max_paths=16),
    )
    assert got["log_weight_spread"][0] < 0.5
    value, stderr, _ = got["kl"]
    assert abs(value - kl) < 3 * stderr + floor, (value, stderr, kl)


@pytest.mark.parametrize("name", ["ddpm", "pf_heun"])
@pytest.mark.parametrize("target", [torus(3, 1), sphere(3, 2)], ids=["torus", "sphere"])
def test_radius_moments_match_monte_carlo(target, name):
    """Mean and second moment of the (first) block's radius: the quadrature law against 2^17 runs
    of samplers.sample on the target's score, within four standard errors (a deterministic flow
    moves each radius along its own ray)."""
    grid, sampler = grid_of(), SAMPLERS[name]
    block = quadrature.decompose(target).block
    law, _ = quadrature.propagate(sampler, block, grid)
    n = 2**17
    y0 = jax.random.normal(jax.random.PRNGKey(1), (n, target.d))
    y = sample(sampler, target.score, grid, y0, jax.random.PRNGKey(2))
    rho = jnp.linalg.norm(target.blocks(y, grid.s[-1])[1][:, 0], axis=-1)
    for power, value in zip((1, 2), moments(law), strict=True):
        draws = rho**power
        assert abs(float(draws.mean()) - value) < 4 * float(draws.std()) / math.sqrt(n), power


@pytest.mark.slow
def test_thousand_steps_at_dimension_thousand():
    """N = 1024, D = 1000, all metrics: the floors stay under 1% of the values."""
    grid = grid_of(steps=1024)
    for target in (bimodal(1000, 100), torus(1000, 100), sphere(1000, 10)):
        for metric, (value, _, floor) in quadrature.quadrature(
            SAMPLERS["ei"], target, grid, ALL
        ).items():
            assert floor < 0.01 * value, (target.name, metric)
