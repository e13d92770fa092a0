"""Validate a composed config and build the objects of one run from it.

Validation happens before any compute: a bad value stops the run with one line naming the key and
what is allowed, and nothing is written.
"""

from __future__ import annotations

from typing import NamedTuple

from omegaconf import ListConfig, OmegaConf

from diffusion_rates import learned, memory, metrics, records, score_error
from diffusion_rates.metrics import density_ratio
from diffusion_rates.precision import PRECISIONS, with_dtype
from diffusion_rates.process import PROCESSES, Process
from diffusion_rates.samplers import SAMPLERS, Sampler
from diffusion_rates.schedules import SCHEDULES, Grid, make_grid
from diffusion_rates.targets import TARGETS
from diffusion_rates.validation import ConfigError, boolean, choice, integer, number

INITS = ("standard", "target")


def horizon(cfg) -> float:
    """T in the OU clock: the config's, or the process's default when null."""
    return cfg.process.default_T if cfg.T is None else cfg.T


def validate(cfg) -> None:
    """Raise ConfigError on the first value that is not allowed."""
    grid = validate_objects(cfg)
    boolean("force", cfg.force)
    if not isinstance(cfg.metrics, ListConfig | list) or len(cfg.metrics) == 0:
        raise ConfigError(f"metrics: a non-empty list of {', '.join(metrics.METRICS)}")
    for m in cfg.metrics:
        choice("metrics", m, metrics.METRICS)
    chosen = settings(cfg)  # validates the density_ratio options
    memory.check(cfg, [metrics.select(m, chosen, grid) for m in chosen.metrics])
    if cfg.density_ratio.reduction == "span" and (why := density_ratio.span_refusal(cfg)):
        raise ConfigError(f"density_ratio.reduction: auto or none here, span does not hold: {why}")


def validate_objects(cfg) -> Grid:
    """Raise ConfigError on the first value of what `build` makes (target, process, grid,
    sampler, score error, loops' settings) that is not allowed; else return the grid."""
    choice("process", cfg.process.name, tuple(PROCESSES))
    choice("sampler", cfg.sampler.name, tuple(SAMPLERS))
    choice("schedule", cfg.schedule.name, tuple(SCHEDULES))
    choice("score_error", cfg.score_error.name, score_error.MODELS)
    number("score_error.eps", cfg.score_error.eps, low=0.0)
    integer("score_error.seed", cfg.score_error.seed, 0)
    if cfg.score_error.name == "learned":
        learned.options_from_config(cfg.score_error)
        if cfg.score_error.eps != 0:
            raise ConfigError(
                "score_error.eps: 0 for score_error=learned (the network's error is set by its "
                f"training and measured; got {cfg.score_error.eps!r})"
            )
    choice("target", cfg.target.name, tuple(TARGETS))
    TARGETS[cfg.target.name].validate(cfg.target)
    integer("steps", cfg.steps, 1)
    grid = validate_schedule(cfg, build_process(cfg))
    integer("n_samples", cfg.n_samples, 1)
    integer("seed", cfg.seed, 0)
    choice("init", cfg.init, INITS)
    choice("precision", cfg.precision, tuple(PRECISIONS))
    choice("reference", cfg.reference, metrics.REFERENCES)
    return grid


def validate_schedule(cfg, process: Process) -> Grid:
    """T, δ and the schedule's own parameters (cfg.schedule); then the grid is built, so that what
    only the schedule knows (δ > 0 for bbdd and logsnr, enough steps for bbdd, c1·log N/N < 1
    for lcw, N ≤ 1000 for ddpm_linear) fails here too, before any compute."""
    name = cfg.schedule.name
    if SCHEDULES[name].own_horizon:
        if cfg.T is not None:
            raise ConfigError(f"T: null, schedule={name} fixes its own horizon (got {cfg.T!r})")
        if number("delta", cfg.delta, low=0.0) != 0:
            raise ConfigError(f"delta: 0, schedule={name} stops at s = 0 (got {cfg.delta!r})")
    else:
        T = number(
            "T",
            horizon(cfg),
            low=0.0,
            high=process.s_max * (1.0 + 1e-12),  # B(t_max) itself, up to its rounding
            low_open=True,
            what=f" (the OU-clock horizon of process={cfg.process.name})",
        )
        number("delta", cfg.delta, low=0.0, high=T, high_open=True, what=" (T)")
    p = cfg.schedule
    if name == "karras":
        number("schedule.rho", p.rho, low=0.0, low_open=True)
    elif name == "lcw":
        c0 = number("schedule.c0", p.c0, low=0.0, low_open=True)
        c1 = number("schedule.c1", p.c1, low=0.0, low_open=True)
        if c1 <= 4.0 * c0:  # LCW's theorem needs c1/c0 > 4
            raise ConfigError(f"schedule.c1: a number > 4·c0 = {4.0 * c0} (got {c1})")
    elif name == "ddpm_linear":
        for key in ("beta_start", "beta_end"):
            number(f"schedule.{key}", p[key], low=0.0, high=1.0, low_open=True, high_open=True)
        integer("schedule.train_steps", p.train_steps, 1)
    try:
        return build_grid(cfg, process)
    except ValueError as exc:  # the schedules' own messages already start with the key
        raise ConfigError(str(exc)) from None


def build_grid(cfg, process: Process) -> Grid:
    """The configured grid; the schedule's parameters are cfg.schedule's keys other than name."""
    params = {k: v for k, v in cfg.schedule.items() if k != "name"}
    return make_grid(process, cfg.schedule.name, horizon(cfg), cfg.delta, cfg.steps, **params)


def build_process(cfg) -> Process:
    params = {k: v for k, v in cfg.process.items() if k not in ("name", "default_T")}
    return PROCESSES[cfg.process.name](**params)


class Settings(NamedTuple):
    """The plain values of a run that its estimators read: what `metrics` needs besides the
    objects, made from the config once (`settings`) so that no config travels into `metrics`."""

    sampler: str
    target: str  # the family's name (cfg.target.name, e.g. product for product_close)
    normalisation: str  # of the target: centred unless its config says otherwise
    score_error: str
    eps: float  # the score error's size
    n_samples: int
    seed: int
    init: str  # standard or target
    precision: str  # float64 or float32, of the Monte Carlo loops
    reference: str  # noised or data
    metrics: tuple  # the metrics asked for
    estimator: dict  # metric -> the estimator the config names for it (None: the best valid one)
    density_ratio: density_ratio.Options  # with auto resolved to none where span does not hold


def settings(cfg) -> Settings:
    """The run's Settings from its config; the density_ratio options are validated here."""
    options = density_ratio.options_from_config(cfg.density_ratio)
    if options.reduction == "auto" and density_ratio.span_refusal(cfg) is not None:
        options = options._replace(reduction="none")
    return Settings(
        sampler=cfg.sampler.name,
        target=cfg.target.name,
        normalisation=cfg.target.get("normalisation", "centred"),
        score_error=cfg.score_error.name,
        eps=float(cfg.score_error.eps),
        n_samples=cfg.n_samples,
        seed=cfg.seed,
        init=cfg.init,
        precision=cfg.precision,
        reference=cfg.reference,
        metrics=tuple(cfg.metrics),
        estimator=dict(cfg.get("estimator") or {}),
        density_ratio=options,
    )


class Run(NamedTuple):
    """The objects of one run and its Settings: all that `metrics.measure` reads."""

    target: object  # float64: what exact laws and quadrature use
    process: Process
    grid: Grid
    sampler: Sampler
    score_error: score_error.ScoreError
    settings: Settings

    @property
    def dtype(self):
        """The Monte Carlo loops' precision."""
        return PRECISIONS[self.settings.precision]

    @property
    def chain_target(self):
        """The target in the Monte Carlo loops' precision."""
        return with_dtype(self.target, self.dtype)

    @property
    def score(self):
        """The score the sampler sees: the target's, with the configured error, in the loops'
        precision."""
        return with_dtype(self.score_error, self.dtype).apply(self.chain_target.score)


def build_target(cfg):
    """The target of cfg.target, in float64."""
    return TARGETS[cfg.target.name].build(cfg.target)


def build(cfg) -> Run:
    process = build_process(cfg)
    grid = build_grid(cfg, process)
    target = build_target(cfg)
    e = cfg.score_error
    if e.name == "learned":
        network = learned.trained(
            target,
            OmegaConf.to_container(cfg.target, resolve=True),
            learned.options_from_config(e),
            e.seed,
            records.code_version(),
            cfg.output.networks,
        )
        error = score_error.ScoreError("learned", 0.0, network)
    else:
        error = score_error.build(e.name, e.eps, target.d, e.seed)
    return Run(target, process, grid, SAMPLERS[cfg.sampler.name], error, settings(cfg))
