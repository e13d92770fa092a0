"""Estimators of the distance between q_δ and the sampler's output, best first.

`ESTIMATORS` lists, in order of preference, each estimator with the metrics it gives and the
runs it is valid for; `select` picks the best valid one for a metric unless the config names one
(`estimator.<metric>=<name>`), and refuses one that is not valid for the run. `measure` computes
every requested metric and also the measured score error ε² of the run (always recorded).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from diffusion_rates import noise, score_error
from diffusion_rates.metrics import density_ratio, exact, path, quadrature, samples, strong
from diffusion_rates.samplers import SAMPLERS, sample
from diffusion_rates.validation import ConfigError

METRICS = ("kl", "kl_reverse", "tv", "w2", "hellinger", "mmd", "kl_path", "girsanov", "strong")
SCORE_ERROR_SAMPLES = 256  # per grid time: the measured ε² needs N × this many target samples


class Value(NamedTuple):
    value: float
    stderr: float
    floor: float
    status: str = "ok"
    reduction: str = "none"  # the exact reduction the estimate rests on (e.g. span:4+12)


class Estimator(NamedTuple):
    metrics: tuple
    valid: Callable  # (cfg, grid, metric) -> bool
    measure: Callable  # (run, metric names, cfg, outputs) -> {metric: Value}


def _exact(run, names, cfg, outputs):
    score = run.score_error.apply(run.target.eigen_score, run.target.to_eigen)
    got = exact.exact_gaussian(run.sampler, run.target, run.grid, names, cfg.init, score)
    return {m: Value(*v) for m, v in got.items()}


def _quadrature(run, names, cfg, outputs):
    got = quadrature.quadrature(
        run.sampler, run.target, run.grid, names, cfg.init, key=_key(cfg, 7)
    )
    return {m: Value(*v) for m, v in got.items()}


def _density_ratio(run, names, cfg, outputs):
    options = density_ratio.options_from_config(cfg.density_ratio)
    if options.reduction == "auto" and density_ratio.span_refusal(cfg) is not None:
        options = options._replace(reduction="none")
    got = density_ratio.estimate(
        run.sampler,
        run.score,
        run.target,
        run.grid,
        cfg.n_samples,
        _key(cfg, 2),
        cfg.init,
        options,
        tuple(names),
        run.dtype,
    )
    spread = got["log_weight_spread"][0]
    mean, mean_se, _ = got["ratio_mean"]
    status = "ok"
    if spread > density_ratio.SPREAD_LIMIT:
        status = f"unreliable: log-weight spread {spread:.2g} > {density_ratio.SPREAD_LIMIT}"
    elif abs(mean - 1.0) > 3.0 * mean_se + 1e-12:  # E_q[r̂] = 1 exactly: a miss means heavy tails
        status = f"unreliable: E r̂ = {mean:.4g} ± {mean_se:.2g}, not 1"
    elif got["missed"]:
        status = got["missed"]
    return {m: Value(*got[m], status, got["reduction"]) for m in (*names, *density_ratio.CHECKS)}


def _path(run, names, cfg, outputs):
    out = {}
    if "kl_path" in names:
        out["kl_path"] = Value(
            *path.kl_path(
                run.sampler,
                run.score,
                run.chain_target,
                run.grid,
                cfg.n_samples,
                _key(cfg, 3),
                cfg.init,
                run.dtype,
            ),
            0.0,
        )
    if "girsanov" in names:
        out["girsanov"] = Value(
            *path.girsanov(
                run.score,
                run.chain_target,
                run.grid,
                min(cfg.n_samples, SCORE_ERROR_SAMPLES),
                _key(cfg, 4),
                run.dtype,
            ),
            0.0,
        )
    return out


def _strong(run, names, cfg, outputs):
    """RMS pathwise distance to a fine `sra1` reference on the same Brownian path (strong.py),
    from y0 ~ the run's init."""
    k_init, k_path = jax.random.split(_key(cfg, 8))
    y0 = _initial(run, cfg, k_init)
    return {"strong": Value(*strong.estimate(run.sampler, run.score, run.grid, y0, k_path))}


def _sample_based(name):
    def measure(run, names, cfg, outputs):
        target_sample, output, reference = outputs()
        return {
            m: Value(*samples.with_floor(name, target_sample, output, reference, _key(cfg, 5)))
            for m in names
        }

    return measure


def _any(cfg, grid, metric) -> bool:
    return True


def _density(cfg, grid, metric) -> bool:
    """Path weights need reverse kernels with a density (girsanov needs none)."""
    return metric == "girsanov" or density_ratio.valid(SAMPLERS[cfg.sampler.name], grid)


def _gaussian_target(cfg, grid, metric) -> bool:
    return cfg.target.name == "gaussian" and score_error.is_affine(
        cfg.score_error.name, cfg.score_error.eps
    )


def _reduces_to_1d(cfg, grid, metric) -> bool:
    """quadrature: a product, or a centred sphere or torus, one-step sampler, exact score."""
    return (
        quadrature.valid(SAMPLERS[cfg.sampler.name], cfg.target.name)
        and cfg.target.get("normalisation", "centred") == "centred"
        and float(cfg.score_error.eps) == 0.0
    )


ESTIMATORS = {
    "exact_gaussian": Estimator(("kl", "kl_reverse", "w2", "hellinger"), _gaussian_target, _exact),
    "quadrature": Estimator(quadrature.METRICS, _reduces_to_1d, _quadrature),
    "density_ratio": Estimator(density_ratio.METRICS, _density, _density_ratio),
    "path_mc": Estimator(("kl_path", "girsanov"), _density, _path),
    **{
        name: Estimator(("mmd",) if name == "mmd" else ("w2",), _any, _sample_based(name))
        for name in samples.ESTIMATES
    },
    "strong": Estimator(("strong",), lambda cfg, grid, m: strong.valid(cfg.sampler.name), _strong),
}


def _key(cfg, stream: int):
    return jax.random.fold_in(jax.random.PRNGKey(cfg.seed), stream)


def select(metric: str, cfg, grid) -> str:
    """The estimator for `metric`: the config's choice if it names one, else the best valid."""
    chosen = (cfg.get("estimator") or {}).get(metric)
    if chosen is not None:
        if chosen not in ESTIMATORS or metric not in ESTIMATORS[chosen].metrics:
            givers = [n for n, e in ESTIMATORS.items() if metric in e.metrics]
            raise ConfigError(f"estimator.{metric}: one of {', '.join(givers)} (got {chosen!r})")
        if not ESTIMATORS[chosen].valid(cfg, grid, metric):
            raise ConfigError(
                f"estimator.{metric}: {chosen} is not valid for target={cfg.target.name}, "
                f"sampler={cfg.sampler.name}, score_error={cfg.score_error.name}"
            )
        return chosen
    for name, est in ESTIMATORS.items():
        if metric in est.metrics and est.valid(cfg, grid, metric):
            return name
    raise ConfigError(
        f"metrics: no estimator gives {metric!r} for target={cfg.target.name}, "
        f"sampler={cfg.sampler.name}, score_error={cfg.score_error.name}"
    )


def _initial(run, cfg, key):
    """n_samples starting points at s_0 = T in the loops' precision: N(0, I) or q_T."""
    if cfg.init == "standard":
        return noise.normal(key, (cfg.n_samples, run.target.d), run.dtype)
    # cast: a float64 time s promotes the target's samples whatever the target's own dtype
    return run.chain_target.sample(key, cfg.n_samples, run.grid.s[0]).astype(run.dtype)


def _outputs(run, cfg):
    """Sampler output, a target sample and an independent reference sample, all of size
    n_samples, drawn once per run and shared by the sample-based estimators."""
    cache = {}

    def get():
        if not cache:
            n = cfg.n_samples
            k_init, k_run, k_target, k_ref = jax.random.split(_key(cfg, 1), 4)
            y0 = _initial(run, cfg, k_init)
            output = sample(run.sampler, run.score, run.grid, y0, k_run)
            delta = run.grid.s[-1]
            cache["value"] = (
                run.target.sample(k_target, n, delta),
                output,
                run.target.sample(k_ref, n, delta),
            )
            if not bool(jnp.all(jnp.isfinite(output))):
                raise FloatingPointError("the sampler's output has non-finite values")
        return cache["value"]

    return get


def measure(run, cfg) -> dict:
    """{metric: (estimator, Value)} for the metrics the config asks for, plus the measured ε²."""
    chosen = {m: select(m, cfg, run.grid) for m in cfg.metrics}
    outputs = _outputs(run, cfg)
    out = {}
    for name in dict.fromkeys(chosen.values()):
        names = [m for m, e in chosen.items() if e == name]
        try:
            got = ESTIMATORS[name].measure(run, names, cfg, outputs)
        except FloatingPointError as exc:  # one estimator's failure keeps the others' values
            nan = float("nan")
            got = {m: Value(nan, nan, nan, f"non-finite: {exc}") for m in names}
        for m, value in got.items():
            out[m] = (name, value)
    size = min(cfg.n_samples, SCORE_ERROR_SAMPLES)
    measured = score_error.measured(run.target, run.score_error, run.grid.s, size, _key(cfg, 6))
    for m, (value, stderr) in measured.items():
        out[m] = ("monte_carlo", Value(value, stderr, 0.0))
    return out
