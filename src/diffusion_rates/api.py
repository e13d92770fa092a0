"""The suite from Python: a target, a time grid, the sampler's output and the measured metrics,
each built from the config the command line composes for the same choices.

    import diffusion_rates as dr

    q = dr.target("product_close", d=4)
    g = dr.grid(schedule="bbdd", steps=64, T=5.0)
    x = dr.sample(q, "ei", g, n=4096)                # (4096, 4): the sampler's output
    kl = dr.measure(["kl"], q, "ei", g, n=4096)["kl"]
    print(f"KL = {kl.value:.4g} ± {kl.stderr:.2g} (floor {kl.floor:.2g}, {kl.estimator})")

Every function turns its arguments into the command line's overrides (`target=product_close`,
`target.d=4`, `schedule=bbdd`, ...), composes configs/ with them through Hydra's compose API,
validates the result as `diffusion-rates` does (a bad value raises the same one-line ConfigError
naming the key) and builds the objects with `config.build`. So `measure` and `run` return the
values the command line records for that config, bit for bit, and `sample` returns the output
its sample-based estimators compare with the target.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable
from typing import NamedTuple

import jax
import numpy as np
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from diffusion_rates import app, config, metrics
from diffusion_rates.schedules import Grid as TimeGrid


class Target(NamedTuple):
    """A target and the overrides that choose it."""

    law: object  # the built target (float64): d, sample(key, n, s), score(x, s), log_prob(x, s)
    overrides: tuple  # target=<name>, target.<key>=<value>, ...


class Grid(NamedTuple):
    """A time grid in the OU clock and the overrides that choose it."""

    grid: TimeGrid  # s (N + 1 decreasing times from T to δ), t (the process's clock), beta
    overrides: tuple  # process=, schedule=, steps=, T=, delta=, schedule.<key>=<value>


class Metric(NamedTuple):
    """One metric as the command line records it."""

    value: float
    stderr: float
    floor: float  # what the estimator gives on equal laws
    status: str  # ok, or why not (unreliable: ..., non-finite: ...)
    estimator: str
    reduction: str  # the exact reduction the estimate rests on (none, span:k+codim)


def target(name: str, **params) -> Target:
    """The target of configs/target/<name>.yaml with `params` in place of its keys, e.g.
    target("gaussian", d=10, spectrum="power_law"), as `target=<name> target.<key>=<value>`."""
    overrides = (f"target={name}", *_keyed("target", params))
    return Target(config.build_target(_composed(overrides, config.validate_objects)), overrides)


def grid(
    process: str = "ou",
    schedule: str = "uniform",
    steps: int = 64,
    T: float | None = None,
    delta: float | None = None,
    **schedule_params,
) -> Grid:
    """The grid of `steps` reverse steps from T to δ in the OU clock; None keeps the config's
    value (T: the process's default horizon; delta: 1e-3, or what the schedule sets, 0 for lcw);
    `schedule_params` are the schedule's own keys (rho for karras; c0, c1 for lcw; ...)."""
    top = dict(process=process, schedule=schedule, steps=steps, T=T, delta=delta)
    overrides = (*_plain(top), *_keyed("schedule", schedule_params))
    cfg = _composed(overrides, config.validate_objects)
    return Grid(config.build_grid(cfg, config.build_process(cfg)), overrides)


def sample(
    target: Target,
    sampler: str,
    grid: Grid,
    n: int,
    seed: int = 0,
    init: str = "standard",
    score_error: str | tuple | None = None,
    precision: str = "float64",
) -> jax.Array:
    """The sampler's output, (n, d) in `precision`: n reverse chains over the grid from
    `init` (standard: N(0, I); target: q_T), with the target's score or, with `score_error`
    (a name of configs/score_error/, or (name, eps)), that error model's; the same numbers as
    the command line's sample-based estimators compare for this config and seed."""
    overrides = _run(target, sampler, grid, n, seed, init, score_error, precision)
    run = config.build(_composed(overrides, config.validate_objects))
    return metrics.sampler_output(run)


def measure(
    names: str | Iterable[str],
    target: Target,
    sampler: str,
    grid: Grid,
    n: int | None = None,
    seed: int = 0,
    init: str = "standard",
    score_error: str | tuple | None = None,
    precision: str = "float64",
    reference: str = "noised",
    estimator: dict | None = None,
    density_ratio: dict | None = None,
) -> dict[str, Metric]:
    """{metric: Metric} for the metrics `names` (kl, tv, w2, ...), each by the best valid
    estimator unless `estimator` names one ({metric: name}), against `reference` (noised: q_δ;
    data: q_0), plus the measured score error ε² (eps_score_sq_weighted, eps_score_sq_mean) and
    the estimators' checks; n: Monte Carlo size (None: the config's 4096); `density_ratio`: that
    estimator's options ({paths, max_paths, floor_target, reduction}). The sampling arguments
    are `sample`'s."""
    names = [names] if isinstance(names, str) else list(names)
    top = dict(metrics=names, reference=reference)
    overrides = (
        *_run(target, sampler, grid, n, seed, init, score_error, precision),
        *_plain(top),
        *_keyed("estimator", estimator or {}),
        *_keyed("density_ratio", density_ratio or {}),
    )
    return run(*overrides)


def build(*overrides: str) -> config.Run:
    """The run of the command line `diffusion-rates <overrides>`: its objects and Settings,
    validated as the command line validates them."""
    return config.build(_composed(overrides, config.validate))


def run(*overrides: str) -> dict[str, Metric]:
    """{metric: Metric} of `diffusion-rates <overrides>` (e.g. run("target=gmm", "steps=32",
    "metrics=[tv]")): the values its records hold, without writing them. A metric that goes
    non-finite is a status, as in the records; any other failure raises."""
    return {
        m: Metric(v.value, v.stderr, v.floor, v.status, est, v.reduction)
        for m, (est, v) in app.measured(build(*overrides)).items()
    }


def _run(target, sampler, grid, n, seed, init, score_error, precision) -> tuple:
    """The overrides of a run's objects and sampling settings."""
    if isinstance(score_error, tuple):
        name, eps = score_error
        error = (f"score_error={name}", f"score_error.eps={_value(eps)}")
    else:
        error = () if score_error is None else (f"score_error={score_error}",)
    top = dict(sampler=sampler, n_samples=n, seed=seed, init=init, precision=precision)
    return (*target.overrides, *grid.overrides, *_plain(top), *error)


def _plain(values: dict) -> list[str]:
    """`key=value` for the values that are not None (None keeps the config's own); a config
    group's value is the name of its file."""
    return [
        f"{k}={v if k in app.GROUPS else _value(v)}" for k, v in values.items() if v is not None
    ]


def _keyed(group: str, params: dict) -> list[str]:
    """`group.key=value` for each of params."""
    return [f"{group}.{k}={_value(v)}" for k, v in params.items()]


def _value(v) -> str:
    """`v` in Hydra's override grammar, so that the config holds `v`: strings quoted (one that
    looks like a number stays a string; `${...}` still interpolates, as on the command line),
    sequences as [...], mappings as {...}."""
    if v is None:
        return "null"
    if isinstance(v, bool | np.bool_):
        return "true" if v else "false"
    if isinstance(v, int | np.integer):
        return str(int(v))
    if isinstance(v, float | np.floating):
        return repr(float(v))
    if isinstance(v, str):  # Hydra's escapes: \' for a quote, \\ for a backslash before one
        escaped = re.sub(r"(\\*)'", lambda m: 2 * m.group(1) + "\\'", v)
        return "'" + re.sub(r"(\\+)$", lambda m: 2 * m.group(1), escaped) + "'"
    if isinstance(v, dict):
        return "{" + ",".join(f"{k}:{_value(x)}" for k, x in v.items()) + "}"
    if isinstance(v, list | tuple | np.ndarray):
        return "[" + ",".join(_value(x) for x in v) + "]"
    raise TypeError(f"no config value for {v!r} ({type(v).__name__})")


def _composed(overrides, validate):
    """The validated config of the command line with these overrides."""
    with _hydra():
        return app.job_config(list(overrides), validate)


@contextlib.contextmanager
def _hydra():
    """Hydra initialised on configs/: already, e.g. inside the app's own jobs, or for the call."""
    if GlobalHydra.instance().is_initialized():
        yield
    else:
        with initialize_config_dir(app.CONFIG_DIR, version_base=None):
            yield
