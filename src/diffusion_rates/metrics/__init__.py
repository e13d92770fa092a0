"""Estimators of the distance between q_δ and the sampler's output, best first.

`ESTIMATORS` lists, in order of preference, each estimator with the metrics it gives and the
(target, sampler) pairs it is valid for; `select` picks the best valid one for a metric.
"""

from __future__ import annotations

from typing import NamedTuple

import jax

from diffusion_rates import score_error
from diffusion_rates.metrics import exact
from diffusion_rates.validation import ConfigError

METRICS = ("kl", "kl_reverse", "w2", "hellinger")
SCORE_ERROR_METRICS = ("eps_score_sq_weighted", "eps_score_sq_mean")
SCORE_ERROR_SAMPLES = 256  # per grid time: the measured ε² needs N × this many target samples


class Estimator(NamedTuple):
    metrics: tuple
    valid: callable  # config -> bool
    measure: callable  # (run, metrics, cfg) -> {metric: (value, stderr, floor)}


ESTIMATORS = {
    "exact_gaussian": Estimator(
        tuple(exact.METRICS),
        lambda cfg: cfg.target.name == "gaussian"
        and (cfg.score_error.name in ("none", "misspecified") or cfg.score_error.eps == 0),
        lambda run, names, cfg: exact.exact_gaussian(
            run.sampler,
            run.target,
            run.grid,
            names,
            cfg.init,
            run.score_error.apply(run.target.eigen_score, run.target.to_eigen),
        ),
    ),
}


def select(metric: str, cfg) -> str:
    for name, est in ESTIMATORS.items():
        if metric in est.metrics and est.valid(cfg):
            return name
    raise ConfigError(
        f"metrics: no estimator gives {metric!r} for target={cfg.target.name}, "
        f"sampler={cfg.sampler.name}, score_error={cfg.score_error.name}"
    )


def measure(run, cfg) -> dict:
    """{metric: (estimator, value, stderr, floor)} for the metrics the config asks for."""
    chosen = {m: select(m, cfg) for m in cfg.metrics}
    out = {}
    for name in dict.fromkeys(chosen.values()):
        names = [m for m, e in chosen.items() if e == name]
        for m, (value, stderr, floor) in ESTIMATORS[name].measure(run, names, cfg).items():
            out[m] = (name, value, stderr, floor)
    key = jax.random.fold_in(jax.random.PRNGKey(cfg.seed), 1)
    size = min(cfg.n_samples, SCORE_ERROR_SAMPLES)
    for m, (value, stderr) in score_error.measured(
        run.target, run.score_error, run.grid.s, size, key
    ).items():
        out[m] = ("monte_carlo", value, stderr, 0.0)
    return out
