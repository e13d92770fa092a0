"""Estimators of the distance between the sampler's output and a reference law, best first.

The reference (`reference` in the config) is q_δ, the target noised to the early-stopping time δ
(`noised`, what BBDD, LCW, PAD and PTW bound), or the data law q_0 itself (`data`, what practice
compares with). `ESTIMATORS` lists, in order of preference, each estimator with the metrics it
gives, the runs it is valid for and the references it serves; `select` picks the best valid one
that serves the config's reference for a metric unless the config names one
(`estimator.<metric>=<name>`), and refuses one that is not valid for the run or does not serve
its reference. `measure` computes every requested metric and also the measured score error ε² of
the run (always recorded, whatever the reference).

A run here is `config.Run`: the built objects and their `config.Settings` (`run.settings`, the
sampler's and target's names, n_samples, seed, init, reference, estimator choices, ...), which
is all an estimator reads; the config itself stays in `config`.
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
    valid: Callable  # (settings, grid, metric) -> bool
    measure: Callable  # (run, metric names, outputs) -> {metric: Value}
    references: tuple = ("noised",)  # the laws it can compare the output with (REFERENCES)


def _exact(run, names, outputs):
    score = run.score_error.apply(run.target.eigen_score, run.target.to_eigen)
    at = reference_time(run.settings, run.grid)
    got = exact.exact_gaussian(
        run.sampler, run.target, run.grid, names, run.settings.init, score, at
    )
    return {m: Value(*v) for m, v in got.items()}


def _quadrature(run, names, outputs):
    s = run.settings
    at = reference_time(s, run.grid)
    got = quadrature.quadrature(
        run.sampler, run.target, run.grid, names, s.init, key=_key(s, 7), at=at
    )
    return {m: Value(*v) for m, v in got.items()}


def _density_ratio(run, names, outputs):
    s = run.settings
    got = density_ratio.estimate(
        run.sampler,
        run.score,
        run.target,
        run.grid,
        s.n_samples,
        _key(s, 2),
        s.init,
        s.density_ratio,
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


def _path(run, names, outputs):
    s = run.settings
    out = {}
    if "kl_path" in names:
        out["kl_path"] = Value(
            *path.kl_path(
                run.sampler,
                run.score,
                run.chain_target,
                run.grid,
                s.n_samples,
                _key(s, 3),
                s.init,
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
                min(s.n_samples, SCORE_ERROR_SAMPLES),
                _key(s, 4),
                run.dtype,
            ),
            0.0,
        )
    return out


def _strong(run, names, outputs):
    """RMS pathwise distance to a fine `sra1` reference on the same Brownian path (strong.py),
    from y0 ~ the run's init."""
    k_init, k_path = jax.random.split(_key(run.settings, 8))
    y0 = _initial(run, k_init)
    return {"strong": Value(*strong.estimate(run.sampler, run.score, run.grid, y0, k_path))}


def _sample_based(name):
    def measure(run, names, outputs):
        target_sample, output, reference = outputs()
        key = _key(run.settings, 5)
        return {
            m: Value(*samples.with_floor(name, target_sample, output, reference, key))
            for m in names
        }

    return measure


def _any(settings, grid, metric) -> bool:
    return True


def _density(settings, grid, metric) -> bool:
    """Path weights need reverse kernels with a density (girsanov needs none)."""
    return metric == "girsanov" or density_ratio.valid(SAMPLERS[settings.sampler], grid)


def _gaussian_target(settings, grid, metric) -> bool:
    return settings.target == "gaussian" and score_error.is_affine(
        settings.score_error, settings.eps
    )


def _reduces_to_1d(settings, grid, metric) -> bool:
    """quadrature: a product, or a centred sphere or torus, one-step sampler, exact score."""
    return (
        quadrature.valid(SAMPLERS[settings.sampler], settings.target)
        and settings.normalisation == "centred"
        and score_error.is_exact(settings.score_error, settings.eps)
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
    "strong": Estimator(("strong",), lambda s, grid, m: strong.valid(s.sampler), _strong),
}
# why an estimator serves only some references, where there is more to say than which it serves
# what an estimator needs of a run, where `valid` can refuse it
NEEDS = {
    "exact_gaussian": "a gaussian target and an affine score: score_error none or misspecified",
    "quadrature": "a product, sphere or torus target (centred), a one-step sampler and the exact "
    "score: score_error none",
}
ONLY_BECAUSE = {
    "strong": "it is pathwise, the distance to a fine reference path at δ, so data makes no "
    "sense for it",
}


def _key(settings, stream: int):
    return jax.random.fold_in(jax.random.PRNGKey(settings.seed), stream)


def reference_time(settings, grid) -> np.float64:
    """The forward time s of the reference law: δ (the grid's end) for `noised`, 0 for `data`;
    a float64 scalar in both cases, as the grid's times are."""
    return grid.s[-1] if settings.reference == "noised" else np.float64(0.0)


def _valid(metric: str, settings, grid) -> list[str]:
    """The estimators that give `metric` and are valid for the run, best first."""
    return [
        n for n, e in ESTIMATORS.items() if metric in e.metrics and e.valid(settings, grid, metric)
    ]


def _where(settings) -> str:
    """The run's choices that make an estimator valid or not, as the error messages name them."""
    return (
        f"target={settings.target}, sampler={settings.sampler}, score_error={settings.score_error}"
    )


def _unserved(metric: str, name: str, settings, grid) -> ConfigError:
    """The one-line refusal of estimator `name`, valid for the run, which does not serve the
    run's reference; it names the estimators that would."""
    reference = settings.reference
    why = ONLY_BECAUSE.get(name, f"it serves {', '.join(ESTIMATORS[name].references)}")
    serving = [n for n in _valid(metric, settings, grid) if reference in ESTIMATORS[n].references]
    here = (
        f"estimators that serve {reference} for {metric}: {', '.join(serving)}"
        if serving
        else f"no estimator serves {reference} for {metric} on {_where(settings)}"
    )
    return ConfigError(f"reference: {reference} is not served by {name} ({why}); {here}")


def select(metric: str, settings, grid) -> str:
    """The estimator for `metric` (settings: a `config.Settings`): the one the run names if it
    names one, else the best valid one that serves the run's reference."""
    chosen = settings.estimator.get(metric)
    if chosen is not None:
        if chosen not in ESTIMATORS or metric not in ESTIMATORS[chosen].metrics:
            givers = [n for n, e in ESTIMATORS.items() if metric in e.metrics]
            raise ConfigError(f"estimator.{metric}: one of {', '.join(givers)} (got {chosen!r})")
        if not ESTIMATORS[chosen].valid(settings, grid, metric):
            needs = f" (it needs {NEEDS[chosen]})" if chosen in NEEDS else ""
            raise ConfigError(
                f"estimator.{metric}: {chosen} is not valid for {_where(settings)}{needs}"
            )
        if settings.reference not in ESTIMATORS[chosen].references:
            raise _unserved(metric, chosen, settings, grid)
        return chosen
    valid = _valid(metric, settings, grid)
    for name in valid:
        if settings.reference in ESTIMATORS[name].references:
            return name
    if valid:  # estimators for the metric exist here, but none compares with this reference
        raise _unserved(metric, valid[0], settings, grid)
    raise ConfigError(f"metrics: no estimator gives {metric!r} for {_where(settings)}")


def _initial(run, key):
    """n_samples starting points at s_0 = T in the loops' precision: N(0, I) or q_T."""
    n = run.settings.n_samples
    if run.settings.init == "standard":
        return noise.normal(key, (n, run.target.d), run.dtype)
    # cast: a float64 time s promotes the target's samples whatever the target's own dtype
    return run.chain_target.sample(key, n, run.grid.s[0]).astype(run.dtype)


def _sample_keys(settings):
    """The keys of the initial points, the chain, the target sample and the reference sample."""
    return jax.random.split(_key(settings, 1), 4)


def sampler_output(run) -> jax.Array:
    """The sampler's output, (n_samples, d) in the loops' precision: the one the sample-based
    estimators compare with the target."""
    k_init, k_run, _, _ = _sample_keys(run.settings)
    return sample(run.sampler, run.score, run.grid, _initial(run, k_init), k_run)


def _outputs(run):
    """Sampler output, a target sample and an independent reference sample, all of size
    n_samples, drawn once per run and shared by the sample-based estimators; both target
    samples are drawn at the reference time (δ, or 0 for the data)."""
    cache = {}

    def draw():
        n = run.settings.n_samples
        _, _, k_target, k_ref = _sample_keys(run.settings)
        output = sampler_output(run)
        if not bool(jnp.all(jnp.isfinite(output))):
            raise FloatingPointError("the sampler's output has non-finite values")
        at = reference_time(run.settings, run.grid)
        return run.target.sample(k_target, n, at), output, run.target.sample(k_ref, n, at)

    def get():
        if not cache:  # once: a failure (non-finite, out of memory) is every such estimator's
            try:
                cache["value"] = draw()
            except Exception as exc:
                cache["error"] = exc
        if "error" in cache:
            raise cache["error"]
        return cache["value"]

    return get


def failure(exc: Exception) -> str:
    """The status of a computation that raised `exc`: non-finite, timeout or error, and its first
    line with XLA's repeated prefixes ("Error dispatching computation: " once per nested call)
    said once, so that the cause at its end survives the 300-character cut."""
    first = next(iter(str(exc).strip().splitlines()), "")
    parts = first.split(": ")
    why = ": ".join(p for i, p in enumerate(parts) if i == 0 or p != parts[i - 1])
    if len(why) > 300:
        why = f"{why[:140]} … {why[-140:]}"
    if isinstance(exc, FloatingPointError):
        return f"non-finite: {why}"
    if isinstance(exc, TimeoutError):
        return f"timeout: {why}"
    return f"error: {type(exc).__name__}: {why}"


def measure(run) -> dict:
    """{metric: (estimator, Value)} for the metrics the run asks for (a `config.Run`), plus the
    measured ε²."""
    s = run.settings
    chosen = {m: select(m, s, run.grid) for m in s.metrics}
    outputs = _outputs(run)
    out = {}
    for name in dict.fromkeys(chosen.values()):
        names = [m for m, e in chosen.items() if e == name]
        try:
            got = ESTIMATORS[name].measure(run, names, outputs)
        except (TimeoutError, ConfigError):  # the whole run's deadline, or bad input
            raise
        except Exception as exc:  # one estimator's failure (non-finite, out of memory) is its
            nan = float("nan")  # own rows: the others keep their values
            got = {m: Value(nan, nan, nan, failure(exc)) for m in names}
        for m, value in got.items():
            out[m] = (name, value)
    size = min(s.n_samples, SCORE_ERROR_SAMPLES)
    measured = score_error.measured(run.target, run.score_error, run.grid.s, size, _key(s, 6))
    for m, (value, stderr) in measured.items():
        out[m] = ("monte_carlo", Value(value, stderr, 0.0))
    return out
