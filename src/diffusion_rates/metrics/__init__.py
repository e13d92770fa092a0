"""Estimators of the distance between the sampler's output and a reference law, best first.

The reference (`reference` in the config) is q_δ, the target noised to the early-stopping time δ
(`noised`, what BBDD, LCW, PAD and PTW bound), or the data law q_0 itself (`data`, what practice
compares with). `ESTIMATORS` lists, in order of preference, each estimator with the metrics it
gives, the runs it is valid for and the references it serves; `select` picks the best valid one
that serves the config's reference for a metric unless the config names one
(`estimator.<metric>=<name>`), and refuses one that is not valid for the run or does not serve
its reference. `measure` computes every requested metric and also the measured score error ε² of
the run (always recorded, whatever the reference).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from diffusion_rates import noise, score_error
from diffusion_rates.metrics import density_ratio, exact, path, quadrature, samples, strong
from diffusion_rates.samplers import SAMPLERS, sample
from diffusion_rates.validation import ConfigError

METRICS = ("kl", "kl_reverse", "tv", "w2", "hellinger", "mmd", "kl_path", "girsanov", "strong")
REFERENCES = ("noised", "data")  # q_δ, or the data q_0
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
    references: tuple = ("noised",)  # the laws it can compare the output with (REFERENCES)


def _exact(run, names, cfg, outputs):
    score = run.score_error.apply(run.target.eigen_score, run.target.to_eigen)
    at = reference_time(cfg, run.grid)
    got = exact.exact_gaussian(run.sampler, run.target, run.grid, names, cfg.init, score, at)
    return {m: Value(*v) for m, v in got.items()}


def _quadrature(run, names, cfg, outputs):
    at = reference_time(cfg, run.grid)
    got = quadrature.quadrature(
        run.sampler, run.target, run.grid, names, cfg.init, key=_key(cfg, 7), at=at
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
    "exact_gaussian": Estimator(
        ("kl", "kl_reverse", "w2", "hellinger"), _gaussian_target, _exact, REFERENCES
    ),
    "quadrature": Estimator(quadrature.METRICS, _reduces_to_1d, _quadrature, REFERENCES),
    "density_ratio": Estimator(density_ratio.METRICS, _density, _density_ratio),
    "path_mc": Estimator(("kl_path", "girsanov"), _density, _path),
    **{
        name: Estimator(
            ("mmd",) if name == "mmd" else ("w2",), _any, _sample_based(name), REFERENCES
        )
        for name in samples.ESTIMATES
    },
    "strong": Estimator(("strong",), lambda cfg, grid, m: strong.valid(cfg.sampler.name), _strong),
}
# why an estimator serves only some references, where there is more to say than which it serves
ONLY_BECAUSE = {
    "strong": "it is pathwise, the distance to a fine reference path at δ, so data makes no "
    "sense for it",
}


def _key(cfg, stream: int):
    return jax.random.fold_in(jax.random.PRNGKey(cfg.seed), stream)


def reference_time(cfg, grid) -> np.float64:
    """The forward time s of the reference law: δ (the grid's end) for `noised`, 0 for `data`;
    a float64 scalar in both cases, as the grid's times are."""
    return grid.s[-1] if cfg.reference == "noised" else np.float64(0.0)


def _valid(metric: str, cfg, grid) -> list[str]:
    """The estimators that give `metric` and are valid for the run, best first."""
    return [n for n, e in ESTIMATORS.items() if metric in e.metrics and e.valid(cfg, grid, metric)]


def _unserved(metric: str, name: str, cfg, grid) -> ConfigError:
    """The one-line refusal of estimator `name`, valid for the run, which does not serve the
    config's reference; it names the estimators that would."""
    reference = cfg.reference
    why = ONLY_BECAUSE.get(name, f"it serves {', '.join(ESTIMATORS[name].references)}")
    serving = [n for n in _valid(metric, cfg, grid) if reference in ESTIMATORS[n].references]
    here = (
        f"estimators that serve {reference} for {metric}: {', '.join(serving)}"
        if serving
        else f"no estimator serves {reference} for {metric} on target={cfg.target.name}, "
        f"sampler={cfg.sampler.name}, score_error={cfg.score_error.name}"
    )
    return ConfigError(f"reference: {reference} is not served by {name} ({why}); {here}")


def select(metric: str, cfg, grid) -> str:
    """The estimator for `metric`: the config's choice if it names one, else the best valid one
    that serves the config's reference."""
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
        if cfg.reference not in ESTIMATORS[chosen].references:
            raise _unserved(metric, chosen, cfg, grid)
        return chosen
    valid = _valid(metric, cfg, grid)
    for name in valid:
        if cfg.reference in ESTIMATORS[name].references:
            return name
    if valid:  # estimators for the metric exist here, but none compares with this reference
        raise _unserved(metric, valid[0], cfg, grid)
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
    n_samples, drawn once per run and shared by the sample-based estimators; both target
    samples are drawn at the reference time (δ, or 0 for the data)."""
    cache = {}

    def get():
        if not cache:
            n = cfg.n_samples
            k_init, k_run, k_target, k_ref = jax.random.split(_key(cfg, 1), 4)
            y0 = _initial(run, cfg, k_init)
            output = sample(run.sampler, run.score, run.grid, y0, k_run)
            at = reference_time(cfg, run.grid)
            cache["value"] = (
                run.target.sample(k_target, n, at),
                output,
                run.target.sample(k_ref, n, at),
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
