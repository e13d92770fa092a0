"""`density_ratio`: KL, TV and Hellinger between q_δ and the sampler's output p̂ through r = p̂/q_δ.

For y ~ q_δ, run the exact forward chain from y up the sampler's own grid (y_N = y, then
y_k = e^{-γ_k} y_{k+1} + σ(γ_k) ξ) and weigh each path by

    w = π(y_0) Π_k p̂(y_{k+1} | y_k) / (q_δ(y_N) Π_k f(y_k | y_{k+1})),

π the sampler's initial law, p̂ its Gaussian kernels N(A y_k + B ŝ(y_k, s_k), C² I), f the forward
kernels. E[w | y] = p̂(y)/q_δ(y), so the average r̂(y) of M paths is unbiased, and
kl = KL(q_δ ‖ p̂) = −E_q log r, tv = ½ E_q |1 − r| and hellinger = (1 − E_q √r)^{1/2}. Valid for
one-step samplers whose kernels have a density (C > 0 at every step).

Bias of the inner average, and how each metric handles it (r̂ = r(1 + e), Var e = τ²/r²):
- kl and hellinger: −log r̂ exceeds −log r by τ²/(2r²) and √r̂ falls short of √r by
  τ²/(8 r^{3/2}) (delta method); both are removed. The floor is what is left, measured: the
  change of the corrected value when the inner sample is halved (as quadrature's floor is the
  change from halving its grid), or its standard error where larger: the bias at M when it
  falls like 1/M, a bound on it when it falls faster. Where the weights are heavy-tailed
  the correction falls short, and the halving shows it.
- tv: ½|1 − r̂| is biased up where |1 − r| ≲ τ, and no power series in 1/M removes that. But
  TV = max over s(y) ∈ [−1, 1] of ½ E_q[(1 − r) s], attained at s = sign(1 − r), and r̂ is
  unbiased: with the paths split into independent halves A and B, the cross-fitted
  L = ¼ E[(1 − r̂_A) sign(1 − r̂_B) + (1 − r̂_B) sign(1 − r̂_A)] is biased down (a wrong sign
  only loses), while U = ½ E|1 − r̂| is biased up, and L ≤ U point by point. So TV lies in
  [E L, E U]: the value is the midpoint and the floor the half-width (U − L)/2, an estimate of
  the largest bias the midpoint can have. On equal laws the midpoint stays at its floor.

Adaptive inner sample: paths are drawn in rounds, doubling M, until every requested metric has
floor ≤ floor_target × value, M reaches max_paths, or the log-weight spread exceeds
SPREAD_LIMIT (more paths do not help there); a run that misses its target keeps its values and
says so in its status.

Span reduction (exact). For a mixture of N(μ_k, c² I) with one c, q_s factorises into its law on
V = span{μ_k} (k dimensions) and N(0, (a_s² c² + σ_s²) I) on V⊥, and a one-step sampler with
scalar (A, B, C) on the exact score maps such a product to a product. So the path weights are
computed in k dimensions, and the V⊥ block is exact (`exact.output_moments` on one coordinate):
its KL adds, its Bhattacharyya coefficient multiplies, and its ratio r⊥ depends on y⊥ only
through |y⊥|² ~ v_q χ²_{d−k}, one exact draw per point, so TV = ½ E|1 − r_V r⊥| is averaged
over exact r⊥.

Checks carried with the estimate: E_q[r̂] must be 1 (`ratio_mean`); the spread of log w within a
y says when the importance weights degenerate (`log_weight_spread`); `paths` is the M used.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from diffusion_rates import score_error
from diffusion_rates.metrics import exact
from diffusion_rates.noise import normal
from diffusion_rates.precision import with_dtype
from diffusion_rates.process import sigma2
from diffusion_rates.samplers import grid_steps
from diffusion_rates.targets.gaussian import Gaussian
from diffusion_rates.targets.gmm import GMM, is_list
from diffusion_rates.validation import ConfigError, choice, integer, number

SPREAD_LIMIT = 2.0  # above this std of log w, r̂ rests on a few paths: flagged unreliable
METRICS = ("kl", "tv", "hellinger")
CHECKS = ("ratio_mean", "log_weight_spread", "paths")  # carried with every record
REDUCTIONS = ("auto", "span", "none")
SPAN_RANK_TOLERANCE = 1e-10  # singular values of the means below this × the largest: not in V


class Options(NamedTuple):
    """`reduction`: auto (span where it holds), span (required) or none; `paths`: inner paths
    per point in the first round (even, >= 4: two halves of at least 2); `max_paths`: the budget
    per point; `floor_target`: stop doubling once every floor ≤ floor_target × its value."""

    reduction: str = "auto"
    paths: int = 16
    max_paths: int = 1024
    floor_target: float = 0.1


DEFAULT_OPTIONS = Options()


def options_from_config(c) -> Options:
    """Validated options from the config's `density_ratio` group."""
    choice("density_ratio.reduction", c.reduction, REDUCTIONS)
    paths = integer("density_ratio.paths", c.paths, 1)
    if paths % 2 or paths < 4:  # two halves, each with a variance: at least 2 paths per half
        raise ConfigError(f"density_ratio.paths: an even integer >= 4 (got {paths!r})")
    max_paths = integer("density_ratio.max_paths", c.max_paths, 1)
    if max_paths < paths:
        raise ConfigError(
            f"density_ratio.max_paths: an integer >= density_ratio.paths = {paths} "
            f"(got {max_paths!r})"
        )
    floor_target = number("density_ratio.floor_target", c.floor_target, low=0.0, low_open=True)
    return Options(c.reduction, paths, max_paths, floor_target)


class Span(NamedTuple):
    """q_s = (block on V) ⊗ N(0, (a_s² c² + σ_s²) I_codim) on V⊥; `basis` (d, k) spans V."""

    block: GMM
    basis: jax.Array
    complement: Gaussian  # one coordinate of the V⊥ block: N(0, c²) at s = 0
    codim: int

    @property
    def label(self) -> str:
        return f"span:{self.block.d}+{self.codim}"


def span_refusal(cfg) -> str | None:
    """Why the span reduction does not hold for this run's config, or None when it does: it
    needs components N(μ_k, c² I) with one c, the exact (symmetric) score, and a complement with
    a density at δ (c > 0 or δ > 0)."""
    t, error = cfg.target, cfg.score_error
    if not score_error.is_exact(error.name, float(error.eps)):
        return f"a score error breaks the symmetry (score_error={error.name})"
    if t.name == "lcw_gmm":
        c = 1.0
    elif t.name == "point_cloud":
        c = 0.0
    elif t.name == "gmm" and t.covariance == "isotropic":
        scales = np.atleast_1d(np.asarray(list(t.scale) if is_list(t.scale) else t.scale, float))
        if np.ptp(scales) > 0:
            return f"the component scales differ (target.scale={list(scales)})"
        c = float(scales[0])
    else:
        return f"target={t.name} is not a mixture of N(μ_k, c²I) with one c"
    if c == 0.0 and float(cfg.delta) == 0.0:
        return "the complement is a point mass at delta = 0"
    return None


def span_reduction(target) -> Span:
    """The factorisation of a mixture of N(μ_k, c² I): the means' span V from their SVD."""
    _, sv, vt = np.linalg.svd(np.asarray(target.means), full_matrices=False)
    k = int(np.sum(sv > SPAN_RANK_TOLERANCE * max(float(sv.max()), 1e-300)))
    basis = jnp.asarray(vt[:k].T)  # (d, k)
    c2 = target.eigvals[:1]
    block = GMM(target.weights, target.means @ basis, target.eigvals, name=f"{target.name}|V")
    return Span(block, basis, Gaussian(jnp.zeros(1), c2), target.d - k)


def span_holds(target, delta) -> bool:
    """The object-level condition of `span_refusal` for a target with the exact score:
    isotropic components with one c, and a complement with a density at δ."""
    return (
        isinstance(target, GMM)
        and target.covariance == "isotropic"
        and bool(np.ptp(np.asarray(target.eigvals)) == 0)
        and (float(target.eigvals[0]) > 0 or float(delta) > 0)
    )


def _log_normal(x, mean, var):
    d = x.shape[-1]
    return -0.5 * (jnp.sum((x - mean) ** 2, -1) / var + d * jnp.log(2 * jnp.pi * var))


def log_weights(sampler, score, target, grid, y, key, paths: int, init: str = "standard"):
    """log w of `paths` forward paths from each row of y: shape (n, paths)."""
    steps = grid_steps(grid, y.dtype)
    coeffs = jax.vmap(sampler.coefficients)(steps)
    ys = jnp.repeat(y[:, None, :], paths, axis=1).reshape(-1, y.shape[-1])
    s_T = grid.s[0]

    def body(carry, xs):
        y_next, logw = carry  # y_{k+1} at forward time s_{k+1}
        st, (A, B, C), k = xs
        var_f = sigma2(st.gamma)
        noise = normal(jax.random.fold_in(key, k), y_next.shape, y_next.dtype)
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


class _Sums(NamedTuple):
    """Per point, for each half (A, B) of the paths: log Σ w and log Σ w²; over both:
    Σ log w and Σ (log w)²."""

    log_a: jax.Array
    log_b: jax.Array
    sq_a: jax.Array
    sq_b: jax.Array
    lw: jax.Array
    lw_sq: jax.Array

    def add(self, logw_a, logw_b):
        lse = jax.nn.logsumexp
        both = jnp.concatenate([logw_a, logw_b], axis=1)
        return _Sums(
            jnp.logaddexp(self.log_a, lse(logw_a, axis=1)),
            jnp.logaddexp(self.log_b, lse(logw_b, axis=1)),
            jnp.logaddexp(self.sq_a, lse(2 * logw_a, axis=1)),
            jnp.logaddexp(self.sq_b, lse(2 * logw_b, axis=1)),
            self.lw + both.sum(1),
            self.lw_sq + (both**2).sum(1),
        )


def _complement(sampler, span: Span, grid, init):
    """(m_p, v_p, m_q, v_q) of one V⊥ coordinate: the sampler's exact output and q_δ."""
    m_p, v_p = exact.output_moments(sampler, span.complement, grid, init)
    delta = grid.s[-1]
    return m_p, v_p, span.complement.eigen_mean(delta), span.complement.eigen_variances(delta)


def estimate(
    sampler,
    score,
    target,
    grid,
    n: int,
    key,
    init: str = "standard",
    options: Options = DEFAULT_OPTIONS,
    metrics=METRICS,
    dtype=jnp.float64,
) -> dict:
    """{metric: (value, stderr, floor)} for `metrics` and the checks, and "reduction": the label
    of the reduction used ("none" or "span:k+codim"); "missed": the floor target missed, or "".
    The paths run in `dtype` (`score` must be in it already); the exact parts and the sums in
    float64."""
    delta = grid.s[-1]
    holds = span_holds(target, delta)
    if options.reduction == "span" and not holds:
        raise ConfigError("density_ratio.reduction: span needs components N(μ_k, c²I), one c")
    use_span = holds and options.reduction != "none"
    k_y, k_perp, k_paths = jax.random.split(key, 3)
    log_r_perp = jnp.zeros(n)
    kl_perp, log_bc_perp = 0.0, 0.0
    if use_span:
        span = span_reduction(target)
        chain_target = with_dtype(span.block, dtype)
        chain_score = chain_target.score
        y = chain_target.sample(k_y, n, delta).astype(dtype)
        if span.codim:
            m_p, v_p, m_q, v_q = (jnp.squeeze(a) for a in _complement(sampler, span, grid, init))
            # |y⊥|² ~ v_q χ²_codim exactly; the means are 0 (centred init, centred complement)
            radius2 = 2.0 * v_q * jax.random.gamma(k_perp, span.codim / 2.0, (n,))
            log_r_perp = -0.5 * span.codim * jnp.log1p((v_p - v_q) / v_q) - 0.5 * radius2 * (
                v_q - v_p
            ) / (v_p * v_q)
            kl_perp = span.codim * float(exact.kl_gaussian(m_q, v_q, m_p, v_p))
            log_bc_perp = span.codim * float(exact.log_bhattacharyya(m_p, v_p, m_q, v_q))
        reduction = span.label
    else:
        chain_target, chain_score, reduction = with_dtype(target, dtype), score, "none"
        y = chain_target.sample(k_y, n, delta).astype(dtype)

    half = options.paths // 2
    batch = jax.jit(
        lambda key: log_weights(sampler, chain_score, chain_target, grid, y, key, half, init)
    )
    minus_inf = jnp.full(n, -jnp.inf)
    sums = _Sums(minus_inf, minus_inf, minus_inf, minus_inf, jnp.zeros(n), jnp.zeros(n))
    pairs, paths = 0, 0
    # over the batches of paths, up to max_paths; quiet off a terminal (tqdm's disable=None)
    bar = tqdm(
        total=max(1, options.max_paths // (2 * half)),
        desc="density_ratio paths",
        unit="batch",
        leave=False,
        disable=None,
    )
    while True:
        target_pairs = max(1, 2 * pairs)
        while pairs < target_pairs:
            k_a, k_b = jax.random.split(jax.random.fold_in(k_paths, pairs))
            sums = sums.add(batch(k_a), batch(k_b))
            pairs += 1
            bar.update()
        paths = 2 * half * pairs
        got = _summaries(sums, paths, log_r_perp, kl_perp, log_bc_perp, n)
        missing = [m for m in metrics if not got[m][2] <= options.floor_target * got[m][0]]
        # More paths do not narrow a log-weight spread: such a run is flagged, not refined.
        degenerate = got["log_weight_spread"][0] > SPREAD_LIMIT
        if not missing or degenerate or 2 * paths > options.max_paths:
            break
    bar.close()
    got["paths"] = (float(paths), 0.0, 0.0)
    missed = ""
    if missing:
        ratios = ", ".join(f"{m} {_ratio(*got[m][::2])}" for m in missing)
        missed = (
            f"floor target missed: floor/value {ratios} > {options.floor_target:g} "
            f"at {paths} paths (density_ratio.max_paths={options.max_paths})"
        )
    return {**{m: got[m] for m in (*metrics, *CHECKS)}, "reduction": reduction, "missed": missed}


def _ratio(value, floor) -> str:
    return f"{floor / value:.2g}" if value > 0 else "inf (value <= 0)"


def _corrected(log_sum, log_sq, m: int):
    """Per point, from m weights: log r̂, and the KL and H² integrands with the inner average's
    bias removed to second order (r̂ = r(1 + e), E e² = τ²/r², the relative variance of r̂):
    −log r̂ is high by τ²/(2r²), √r̂ low by τ²/(8 r^{3/2}).

    E_q r = 1 exactly, so r − 1 is a control variate with known mean: KL = E[r − 1 − log r] and
    H² = ½ E(1 − √r)² have non-negative integrands of order (1 − r)², whose spread over y is far
    smaller than that of log r or √r."""
    log_r = log_sum - jnp.log(m)
    rel_var = (jnp.exp(log_sq - 2 * log_r - jnp.log(m)) - 1.0) * m / (m - 1)  # Var w / r², ddof 1
    rel_var = jnp.maximum(rel_var, 0.0) / m
    root = jnp.exp(0.5 * log_r)
    kl = jnp.exp(log_r) - 1.0 - log_r - rel_var / 2.0
    h2 = 0.5 * (1.0 - root) ** 2 - root * rel_var / 8.0
    return log_r, kl, h2


def _change(per_point, se) -> float:
    """|mean change|, or its standard error where larger: a change within noise of zero bounds
    the bias no tighter than that noise, and a floor must not vanish by chance."""
    return max(abs(float(per_point.mean())), se(per_point))


def _summaries(sums: _Sums, paths: int, log_r_perp, kl_perp, log_bc_perp, n: int) -> dict:
    """Values, standard errors and floors of every metric from the accumulated path sums.

    Floors: for kl and hellinger, the change of the bias-corrected value when the inner sample
    is halved (M against the mean of halves A and B of M/2), as quadrature's floor is the
    change from halving its grid, or the standard error of that change where larger; for tv,
    the half-width of the cross-fitted bracket."""
    log_r, kl, h2 = _corrected(
        jnp.logaddexp(sums.log_a, sums.log_b), jnp.logaddexp(sums.sq_a, sums.sq_b), paths
    )
    halves = [
        _corrected(getattr(sums, f"log_{h}"), getattr(sums, f"sq_{h}"), paths // 2) for h in "ab"
    ]
    # per point, corrected value at M minus the mean of the two halves' at M/2
    kl_change = kl - 0.5 * (halves[0][1] + halves[1][1])
    h2_change = h2 - 0.5 * (halves[0][2] + halves[1][2])
    r = jnp.exp(log_r + log_r_perp)
    r_a, r_b = (jnp.exp(h[0] + log_r_perp) for h in halves)
    upper = 0.5 * jnp.abs(1.0 - r)
    lower = 0.25 * ((1.0 - r_a) * jnp.sign(1.0 - r_b) + (1.0 - r_b) * jnp.sign(1.0 - r_a))
    tv = 0.5 * (upper + lower)
    se = lambda a: float(jnp.std(a, ddof=1) / np.sqrt(n))  # noqa: E731

    bc_perp = np.exp(log_bc_perp)

    h = np.sqrt(max(1.0 - (1.0 - float(h2.mean())) * bc_perp, 0.0))
    dh = 0.5 * bc_perp / max(h, 1e-300)  # dH/d(H²_V)
    mean_lw = sums.lw / paths
    spread = jnp.sqrt(jnp.maximum(sums.lw_sq / paths - mean_lw**2, 0.0) * paths / (paths - 1))
    r_block = jnp.exp(log_r)
    return {
        "kl": (float(kl.mean()) + kl_perp, se(kl), _change(kl_change, se)),
        "tv": (float(tv.mean()), se(tv), float(jnp.mean(upper - lower) / 2)),
        "hellinger": (float(h), dh * se(h2), dh * _change(h2_change, se)),
        "ratio_mean": (float(r_block.mean()), se(r_block), 0.0),
        "log_weight_spread": (float(jnp.mean(spread)), 0.0, 0.0),
    }


def valid(sampler, grid) -> bool:
    """Every reverse kernel must have a density: a one-step rule with C > 0 at every step."""
    if sampler.coefficients is None:
        return False
    _, _, C = jax.vmap(sampler.coefficients)(jax.tree.map(jnp.asarray, grid.steps()))
    return bool(jnp.all(C > 0))
