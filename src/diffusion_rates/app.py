"""The Hydra entry point: config -> objects -> run -> records.

`diffusion-rates <overrides>` runs one configuration; `diffusion-rates -m experiment=<claim>`
runs a claim's sweep. The whole command line is checked before Hydra starts (every value of every
swept key), so a bad override costs one line on stderr, exit status 2, and no records. A run that
fails (non-finite values, an exception, a timeout) still writes records, with a `status` naming
the reason, so that a sweep goes on.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import math
import os
import re
import signal
import sys
import threading
import time
import warnings
from pathlib import Path

import hydra
import jax
from hydra import compose, initialize_config_dir
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from diffusion_rates import compile_cache, memory, metrics, records
from diffusion_rates import config as config_mod
from diffusion_rates.validation import ConfigError, positive_env

CONFIG_DIR = str(Path(__file__).resolve().parents[2] / "configs")
GROUPS = ("target", "process", "sampler", "schedule", "score_error", "scale", "experiment")
TIMEOUT_ENV = "DIFFUSION_RATES_TIMEOUT_S"  # seconds a run may take; default 90% of timeout_min
# "<file> <fingerprint>": after a multirun, write the fingerprint there if every job is done
# (status.mark_done), the record `make reproduce` compares to skip an unchanged sweep
DONE_ENV = "DIFFUSION_RATES_DONE"
# configs/hydra/launcher/*.yaml replace the launcher plugins' configs of the same names; Hydra
# still checks them against the plugins' schemas, and warns that it does so.
warnings.filterwarnings("ignore", r"(?s).*validated against ConfigStore schema", UserWarning)


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (Path(CONFIG_DIR) / group).glob("*.yaml"))


def _one_line(exc: Exception) -> str:
    """Hydra's composition errors, reduced to one line naming the key and what is allowed."""
    text = str(exc) + (f"\n{exc.__cause__}" if exc.__cause__ else "")
    if found := re.search(r"Could not find '([\w/]+)/([^'/]*)'", text):
        group, option = found.groups()
        options = _options(group) + (["basic"] if group == "hydra/launcher" else [])
        return f"{group}: one of {', '.join(options)} (got {option!r})"
    if found := re.search(r"Missing key \S+\s+full_key: (\S+)", text):
        return f"{found.group(1)}: a required key, missing"
    if found := re.search(r"(Value '.*' of type '\w+' could not be converted to \w+)", text):
        key = re.search(r"full_key: (\S+)", text)
        return f"{key.group(1) if key else 'command line'}: {found.group(1)}"
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


def check_environment() -> None:
    """The environment settings the runs read, checked once before anything starts."""
    positive_env(TIMEOUT_ENV, "seconds")
    positive_env(memory.ENV, "GB")
    if (done := os.environ.get(DONE_ENV)) and " " not in done:  # '<file> ': make without sha256sum
        raise ConfigError(f"{DONE_ENV}: '<file> <fingerprint>' (got {done!r})")


def check_command_line(argv: list[str]) -> None:
    """Compose and validate the config of each command line `_expand` gives; raise ConfigError."""
    overrides = [a for a in argv if not a.startswith("-")]
    if added := [o for o in overrides if o.startswith("+")]:  # a key no code reads, hashed
        raise ConfigError(f"{added[0]}: adding keys is refused; override those of configs/")
    try:
        lines = _expand(overrides)
    except Exception as exc:
        raise ConfigError(f"command line: {_one_line(exc)}") from None
    composed, with_hydra = {}, {}  # compositions, once per choice of config groups (_compose)
    with initialize_config_dir(CONFIG_DIR, version_base=None):
        for line in lines:
            groups = tuple(o.input_line for o in _parse(line) if not _is_value(o))
            if groups not in with_hydra:
                try:
                    with_hydra[groups] = compose("config", list(groups), return_hydra_config=True)
                except Exception as exc:
                    raise ConfigError(_one_line(exc)) from None
            cfg = with_hydra[groups]
            params = cfg.hydra.sweeper.get("params") or {}
            if any(a in ("-m", "--multirun") for a in argv):
                _one_folder_per_job(cfg, overrides, params)
            sweep = [
                f"{k}={v}" for k, v in params.items() if k not in {o.split("=")[0] for o in line}
            ]
            for swept in _expand(sweep) if sweep else [[]]:
                job_config(line + swept, composed=composed)


def _one_folder_per_job(cfg: DictConfig, overrides: list[str], params) -> None:
    """Refuse a sweep of several jobs whose output folder does not depend on the job (a fixed
    output.dir or hydra.sweep.subdir): each job would overwrite the records of the last."""
    parsed = OverridesParser.create().parse_overrides(
        [f"{k}={v}" for k, v in params.items()] + overrides
    )
    jobs = sum(len(batch) for batch in BasicSweeper.split_arguments(parsed, None))
    folders = {
        "output.dir": OmegaConf.to_container(cfg.output, resolve=False)["dir"],
        "hydra.sweep.subdir": OmegaConf.to_container(cfg.hydra.sweep, resolve=False)["subdir"],
    }
    for key, value in folders.items():
        if jobs > 1 and "${" not in str(value):
            raise ConfigError(
                f"{key}: one folder per job, and the {jobs} jobs of this sweep would all write "
                f"{value!r}; leave it unset (hydra.sweep.dir=<folder> moves the sweep)"
            )


def _parse(overrides: list[str]) -> list:
    return OverridesParser.create().parse_overrides(overrides)


def _is_value(o) -> bool:
    """An override that sets a value of the composed config (steps=8, target.d=4), which a
    copy of the composition can take, rather than one that changes the composition itself:
    a config group, a deletion, Hydra's own keys, the output folder (a Hydra value)."""
    key = o.key_or_group
    fixed = key in GROUPS or "/" in key or key.startswith(("hydra.", "output."))
    return not fixed and not o.is_delete()


def _compose(overrides: list[str], composed: dict) -> DictConfig:
    """Hydra's composition of `overrides`, made once per choice of config groups and kept in
    `composed` (a composition costs ~0.1-0.3 s, a sweep has many jobs that differ only in
    values): the values are then set on a plain copy, as the command line's values override
    every config file. ConfigError in one line, as Hydra's own errors are reduced."""
    parsed = _parse(overrides)
    values = [o for o in parsed if _is_value(o)]
    groups = tuple(o.input_line for o in parsed if not _is_value(o))
    if groups not in composed:
        try:
            composed[groups] = compose("config", overrides=list(groups))
        except Exception as exc:
            raise ConfigError(_one_line(exc)) from None
    plain = OmegaConf.to_container(composed[groups], resolve=False)
    for o in values:
        *parents, last = o.key_or_group.split(".")
        node = plain
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict) or last not in node:
            raise ConfigError(
                f"{o.key_or_group}: unknown key (see configs/ for the keys there are)"
            )
        node[last] = o.value()
    return OmegaConf.create(plain)


def job_config(
    overrides: list[str], validate=config_mod.validate, composed: dict | None = None
) -> DictConfig:
    """The config of one job's overrides as its run sees it (output.dir unresolved), checked by
    `validate`; ConfigError in one line. Needs an initialised Hydra on CONFIG_DIR. `composed`:
    the compositions of earlier calls, reused (`_compose`)."""
    job = _compose(overrides, {} if composed is None else composed)
    try:
        cfg = _resolved_without_hydra(job)
        validate(cfg)
    except ConfigError:
        raise
    except Exception as exc:  # e.g. a key deleted with ~key
        raise ConfigError(_one_line(exc)) from None
    return cfg


def _resolved_without_hydra(cfg: DictConfig) -> DictConfig:
    """The config with `output.dir` (a Hydra runtime value) left unresolved."""
    plain = OmegaConf.to_container(cfg, resolve=False)
    plain["output"]["dir"] = "unresolved"
    return OmegaConf.create(OmegaConf.to_container(OmegaConf.create(plain), resolve=True))


def device() -> str:
    """What a run's bits depend on besides its config and code: the device, and on a CPU the
    size of XLA's thread pool, which is the number of CPUs this process may run on (its
    affinity; XLA_FLAGS such as --xla_cpu_multi_thread_eigen do not change it in this jaxlib).
    XLA splits reductions and the inner dimension of matrix products by that pool, so one config
    run on 1 and on 2 CPUs differs in the last bits of sample means, covariances and kernel sums
    (`gaussian_fit`, `mmd`): the records name the pool so that such runs are told apart."""
    d = jax.devices()[0]
    if d.platform != "cpu":
        return f"{d.platform}:{d.device_kind}"
    threads = len(os.sched_getaffinity(0))
    return f"cpu:{d.device_kind}, {threads} thread{'s' if threads > 1 else ''}"


def run(cfg: DictConfig) -> Path | None:
    """One configuration: validate, skip if cached, measure, write records. Returns the file."""
    config_mod.validate(cfg)
    out_dir = Path(cfg.output.dir)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    rid = records.run_id(resolved)
    if not cfg.force and records.cached(out_dir, rid):
        tqdm.write(f"cached {out_dir}")  # above a sweep's progress bar, if any (progress.py)
        return out_dir / records.RECORDS
    records.check_writable(out_dir)
    start = time.perf_counter()
    built = None
    try:  # a failure is a result too: a row whose status names it, and the sweep goes on
        with _deadline(_time_limit()):
            built = config_mod.build(cfg)
            results = measured(built)
    except ConfigError:
        raise
    except Exception as exc:
        nan = float("nan")
        results = {
            m: ("none", metrics.Value(nan, nan, nan, metrics.failure(exc))) for m in cfg.metrics
        }
    wall = time.perf_counter() - start
    target = built.target if built else None
    d = getattr(target, "d", cfg.target.get("d"))
    settings = config_mod.settings(cfg)  # the record's columns are the run's Settings' values
    common = dict(
        run_id=rid,
        experiment=cfg.experiment,
        target_config=cfg.target.get("config_name", cfg.target.name),
        d=d,
        intrinsic_dim=getattr(target, "intrinsic_dim", cfg.target.get("intrinsic_dim", d)),
        K=getattr(target, "K", cfg.target.get("K")),
        process=cfg.process.name,
        schedule=cfg.schedule.name,
        steps=cfg.steps,
        T=float(built.grid.s[0]) if built else config_mod.horizon(cfg),
        delta=float(cfg.delta),
        eps_score=settings.eps,
        **{k: getattr(settings, k) for k in RECORDED_SETTINGS},
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
            status=v.status,
            reduction=v.reduction,
        )
        for m, (est, v) in results.items()
    ]
    path = records.write(out_dir, rows, OmegaConf.to_yaml(resolved))
    tqdm.write(f"wrote {path}")
    return path


# the Settings whose values are record columns of the same name
RECORDED_SETTINGS = (
    "target",
    "sampler",
    "init",
    "score_error",
    "seed",
    "n_samples",
    "precision",
    "reference",
)


def measured(built: config_mod.Run) -> dict:
    """{metric: (estimator, Value)} of a built run with the statuses the records hold."""
    got = metrics.measure(built)
    return {m: (est, v._replace(status=_status(v))) for m, (est, v) in got.items()}


def _status(v: metrics.Value) -> str:
    """A measured value's status; an infinite or NaN value is never `ok`."""
    if math.isfinite(v.value) or v.status.startswith(records.FAILED):
        return v.status
    return "non-finite value" if v.status == "ok" else f"non-finite value; {v.status}"


def _time_limit() -> float | None:
    """Seconds a run may take: $DIFFUSION_RATES_TIMEOUT_S, else 90% of the submitit launcher's
    timeout_min (so the run records its timeout before SLURM kills the job), else none."""
    if seconds := positive_env(TIMEOUT_ENV, "seconds"):
        return seconds
    if HydraConfig.initialized() and HydraConfig.get().launcher.get("timeout_min"):
        return 0.9 * 60 * float(HydraConfig.get().launcher.timeout_min)
    return None


@contextlib.contextmanager
def _deadline(seconds: float | None):
    """Raise TimeoutError in the block after `seconds` (main thread only). Compiled JAX code is
    not interrupted: the error comes when it hands control back to Python."""
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum, frame):
        raise TimeoutError(f"the run took over {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


_CPU_SLOT = []  # the lock file held by this joblib worker for its CPU block, kept open


def _limit_threads() -> None:
    """In a joblib worker, before JAX starts its backend: XLA gets the threads joblib gives each
    worker (OMP_NUM_THREADS = cores // n_jobs), so that workers x threads <= cores. XLA's CPU
    thread pool is as large as the process's CPU affinity, so each worker is confined to its own
    block of that many CPUs."""
    if _CPU_SLOT or not HydraConfig.initialized():
        return
    if "joblib" not in str(HydraConfig.get().launcher.get("_target_", "")):
        return
    threads = int(os.environ.get("OMP_NUM_THREADS") or 0)
    cpus = sorted(os.sched_getaffinity(0))
    if threads < 1 or threads >= len(cpus):
        return
    # a disjoint block of `threads` CPUs per worker, claimed with a lock that dies with the worker
    folder = Path(HydraConfig.get().sweep.dir) / ".cpus"
    folder.mkdir(parents=True, exist_ok=True)
    for slot in range(len(cpus) // threads):
        handle = open(folder / str(slot), "w")  # held for the worker's life
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            continue
        _CPU_SLOT.append(handle)
        os.sched_setaffinity(0, cpus[slot * threads : (slot + 1) * threads])
        return


PARENT_ENV = "DIFFUSION_RATES_PARENT"  # the pid of the process that launched a local sweep
LOCAL_WORKERS = ("JoblibLauncher", "LocalLauncher")  # launchers whose workers are its children
_WATCHED = []  # this worker's watch thread, once per process


def _die_with_parent(parent: int, interval: float = 0.5) -> None:
    """Kill this process (SIGKILL: no record written) once the process `parent` that launched
    the sweep is gone. A local launcher's worker (joblib's loky, submitit_local's job processes,
    whose own parent is submitit's controller) outlived a sweep whose parent was killed with
    SIGKILL, went on computing and held its CPU lock; a thread polling the launching process
    ends it within `interval`. The pid comes from the launching process
    ($DIFFUSION_RATES_PARENT), since a worker still starting may already be an orphan. Polling
    rather than prctl(PR_SET_PDEATHSIG), which fires when the direct parent's spawning *thread*
    ends (loky's manager thread), and only for the direct parent."""
    if _WATCHED:
        return

    def watch():
        while alive(parent):
            time.sleep(interval)
        os.kill(os.getpid(), signal.SIGKILL)

    _WATCHED.append(threading.Thread(target=watch, name="die-with-parent", daemon=True))
    _WATCHED[0].start()


def alive(pid: int) -> bool:
    """Whether process `pid` runs: it exists and (where /proc says) is not a zombie, which a
    killed parent is until its own parent reaps it."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:  # gone meanwhile, or no /proc (macOS: os.kill's answer stands)
        return not Path("/proc/self").exists()


def _local_worker_parent() -> int | None:
    """The launching process's pid in a local launcher's worker; None elsewhere (the basic
    launcher's jobs run in that process; a cluster's have other parents)."""
    if not HydraConfig.initialized() or not os.environ.get(PARENT_ENV, "").isdigit():
        return None
    launcher = str(HydraConfig.get().launcher.get("_target_", ""))
    return int(os.environ[PARENT_ENV]) if launcher.endswith(LOCAL_WORKERS) else None


@hydra.main(config_path=CONFIG_DIR, config_name="config", version_base=None)
def _hydra_main(cfg: DictConfig) -> None:
    logging.getLogger("jax").setLevel(logging.WARNING)  # not Hydra's INFO: JAX's backend probing
    _limit_threads()
    if parent := _local_worker_parent():
        _die_with_parent(parent)
    compile_cache.enable()  # again in a launcher's worker process
    try:
        run(cfg)
    except ConfigError as exc:
        print(f"diffusion-rates: {exc}", file=sys.stderr)
        sys.exit(2)


def _fixed_output_dir(argv: list[str]) -> Path | None:
    """A single run's output.dir given as a plain path on the command line, else None."""
    given = [a.split("=", 1)[1] for a in argv if a.startswith("output.dir=")]
    if any(a in ("-m", "--multirun") for a in argv) or not given or "${" in given[-1]:
        return None
    return Path(given[-1].strip("'\""))


def _launches_elsewhere(argv: list[str]) -> bool:
    """A multirun whose jobs run in other processes (any launcher but the basic one)."""
    multirun = any(a in ("-m", "--multirun") for a in argv)
    launcher = [a.split("=", 1)[1] for a in argv if a.startswith("hydra/launcher=")]
    return multirun and bool(launcher) and launcher[-1] != "basic"


def main() -> None:
    """The command line; Ctrl-C anywhere is one line, and exit status 130."""
    try:
        _main()
    except KeyboardInterrupt:  # records are written whole or not at all (records._atomic_write)
        print(
            "diffusion-rates: interrupted; finished runs kept their records, the run under "
            "way wrote none",
            file=sys.stderr,
        )
        sys.exit(130)


def _main() -> None:
    os.environ[PARENT_ENV] = str(os.getpid())  # inherited by a local launcher's workers
    compile_cache.enable()
    if _launches_elsewhere(sys.argv[1:]):
        # Checking the command line runs a little JAX: keep it on the CPU here, so that this
        # parent process never takes a GPU (and its memory) from the workers it launches.
        jax.config.update("jax_platforms", "cpu")
    try:
        check_environment()
        check_command_line(sys.argv[1:])
        if (out := _fixed_output_dir(sys.argv[1:])) is not None:
            records.check_writable(out)  # before Hydra creates its run folder
    except ConfigError as exc:
        print(f"diffusion-rates: {exc}", file=sys.stderr)
        sys.exit(2)
    _hydra_main()
    multirun = any(a in ("-m", "--multirun") for a in sys.argv[1:])
    if (done := os.environ.get(DONE_ENV)) and multirun:
        from diffusion_rates import status  # imports this module

        path, fingerprint = done.split(" ", 1)
        print(status.mark_done(sys.argv[1:], Path(path), fingerprint))


if __name__ == "__main__":
    main()
