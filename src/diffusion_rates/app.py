"""The Hydra entry point: config -> objects -> run -> records.

`diffusion-rates <overrides>` runs one configuration; `diffusion-rates -m experiment=<claim>`
runs a claim's sweep. The whole command line is checked before Hydra starts (every value of every
swept key), so a bad override costs one line on stderr, exit status 2, and no records.
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import hydra
import jax
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

from diffusion_rates import config as config_mod
from diffusion_rates import metrics, records
from diffusion_rates.validation import ConfigError

CONFIG_DIR = str(Path(__file__).resolve().parents[2] / "configs")
GROUPS = ("target", "process", "sampler", "schedule", "score_error", "scale", "experiment")


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (Path(CONFIG_DIR) / group).glob("*.yaml"))


def _one_line(exc: Exception) -> str:
    """Hydra's composition errors, reduced to one line naming the key and what is allowed."""
    text = str(exc)
    if found := re.search(r"Could not find '(\w+)/([^']*)'", text):
        group, option = found.groups()
        return f"{group}: one of {', '.join(_options(group))} (got {option!r})"
    if found := re.search(r"Could not override '([^']+)'", text) or re.search(
        r"full_key: (\S+)", text
    ):
        return f"{found.group(1)}: unknown key (see configs/ for the keys there are)"
    first = next((line for line in text.splitlines() if line.strip()), repr(exc))
    return first.strip()


def _expand(overrides: list[str]) -> list[list[str]]:
    """Command lines that together try every value of every swept key once."""
    parsed = OverridesParser.create().parse_overrides(overrides)
    base = [o.input_line if not o.is_sweep_override() else None for o in parsed]
    values = [list(o.sweep_string_iterator()) if o.is_sweep_override() else None for o in parsed]
    first = [
        b if b is not None else f"{o.get_key_element()}={v[0]}"
        for o, b, v in zip(parsed, base, values, strict=True)
    ]
    lines = [first]
    for i, (o, v) in enumerate(zip(parsed, values, strict=True)):
        for value in (v or [])[1:]:
            lines.append(first[:i] + [f"{o.get_key_element()}={value}"] + first[i + 1 :])
    return lines


def check_command_line(argv: list[str]) -> None:
    """Compose and validate the config of each command line `_expand` gives; raise ConfigError."""
    overrides = [a for a in argv if not a.startswith("-")]
    try:
        lines = _expand(overrides)
    except Exception as exc:
        raise ConfigError(f"command line: {_one_line(exc)}") from None
    with initialize_config_dir(CONFIG_DIR, version_base=None):
        for line in lines:
            try:
                cfg = compose("config", overrides=line, return_hydra_config=True)
            except Exception as exc:
                raise ConfigError(_one_line(exc)) from None
            params = cfg.hydra.sweeper.get("params") or {}
            sweep = [
                f"{k}={v}" for k, v in params.items() if k not in {o.split("=")[0] for o in line}
            ]
            for swept in _expand(sweep) if sweep else [[]]:
                try:
                    job = compose("config", overrides=line + swept)
                except Exception as exc:
                    raise ConfigError(_one_line(exc)) from None
                config_mod.validate(_resolved_without_hydra(job))


def _resolved_without_hydra(cfg: DictConfig) -> DictConfig:
    """The config with `output.dir` (a Hydra runtime value) left unresolved."""
    plain = OmegaConf.to_container(cfg, resolve=False)
    plain["output"] = {"dir": "unresolved"}
    return OmegaConf.create(OmegaConf.to_container(OmegaConf.create(plain), resolve=True))


def device() -> str:
    d = jax.devices()[0]
    return f"{d.platform}:{d.device_kind}"


def run(cfg: DictConfig) -> Path | None:
    """One configuration: validate, skip if cached, measure, write records. Returns the file."""
    config_mod.validate(cfg)
    out_dir = Path(cfg.output.dir)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    rid = records.run_id(resolved)
    if not cfg.force and records.cached(out_dir, rid):
        print(f"cached {out_dir}")
        return out_dir / records.RECORDS
    start = time.perf_counter()
    built = config_mod.build(cfg)
    try:
        results = metrics.measure(built, cfg)
    except FloatingPointError as exc:  # a diverging sampler is a result, recorded as such
        nan = metrics.Value(float("nan"), float("nan"), float("nan"), f"non-finite: {exc}")
        results = {m: ("none", nan) for m in cfg.metrics}
    wall = time.perf_counter() - start
    target = built.target
    common = dict(
        run_id=rid,
        experiment=cfg.experiment,
        target=cfg.target.name,
        d=target.d,
        intrinsic_dim=target.intrinsic_dim,
        K=target.K,
        process=cfg.process.name,
        sampler=cfg.sampler.name,
        schedule=cfg.schedule.name,
        steps=cfg.steps,
        T=float(built.grid.s[0]),
        delta=float(cfg.delta),
        init=cfg.init,
        score_error=cfg.score_error.name,
        eps_score=float(cfg.score_error.eps),
        seed=cfg.seed,
        n_samples=cfg.n_samples,
        wall_s=wall,
        device=device(),
        code_version=records.code_version(),
    )
    rows = [
        dict(
            common,
            metric=m,
            estimator=est,
            value=v.value,
            stderr=v.stderr,
            floor=v.floor,
            status=v.status if v.value == v.value else v.status.replace("ok", "non-finite value"),
        )
        for m, (est, v) in results.items()
    ]
    path = records.write(out_dir, rows, OmegaConf.to_yaml(resolved))
    print(f"wrote {path}")
    return path


@hydra.main(config_path=CONFIG_DIR, config_name="config", version_base=None)
def _hydra_main(cfg: DictConfig) -> None:
    try:
        run(cfg)
    except ConfigError as exc:
        print(f"diffusion-rates: {exc}", file=sys.stderr)
        sys.exit(2)


def main() -> None:
    try:
        check_command_line(sys.argv[1:])
    except ConfigError as exc:
        print(f"diffusion-rates: {exc}", file=sys.stderr)
        sys.exit(2)
    _hydra_main()


if __name__ == "__main__":
    main()
