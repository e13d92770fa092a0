"""Estimators of the distance between q_δ and the sampler's output, best first.

`ESTIMATORS` lists, in order of preference, each estimator with the metrics it gives and the
(target, sampler) pairs it is valid for; `select` picks the best valid one for a metric.
"""

from __future__ import annotations

from typing import NamedTuple

from diffusion_rates.metrics import exact
from diffusion_rates.validation import ConfigError

METRICS = ("kl", "kl_reverse", "w2", "hellinger")


class Estimator(NamedTuple):
    metrics: tuple
    valid: callable  # (target name, sampler name) -> bool
    measure: callable  # (run, metrics, cfg) -> {metric: (value, stderr, floor)}


ESTIMATORS = {
    "exact_gaussian": Estimator(
        tuple(exact.METRICS),
        lambda target, sampler: target == "gaussian",
        lambda run, names, cfg: exact.exact_gaussian(
            run.sampler, run.target, run.grid, names, cfg.init
        ),
    ),
}


def select(metric: str, target: str, sampler: str) -> str:
    for name, est in ESTIMATORS.items():
        if metric in est.metrics and est.valid(target, sampler):
            return name
    raise ConfigError(
        f"metrics: no estimator gives {metric!r} for target={target}, sampler={sampler}"
    )


def measure(run, cfg) -> dict:
    """{metric: (estimator, value, stderr, floor)} for the metrics the config asks for."""
    chosen = {m: select(m, cfg.target.name, cfg.sampler.name) for m in cfg.metrics}
    out = {}
    for name in dict.fromkeys(chosen.values()):
        names = [m for m, e in chosen.items() if e == name]
        for m, (value, stderr, floor) in ESTIMATORS[name].measure(run, names, cfg).items():
            out[m] = (name, value, stderr, floor)
    return out
