"""`diffusion-rates-status experiment=<claim> [scale=...] [overrides]`: where a sweep stands.

Composes the sweep exactly as `diffusion-rates -m` with the same arguments would (the experiment's
`hydra.sweeper.params` and the command line's own sweeps), finds each job's directory
`<hydra.sweep.dir>/<override_dirname>`, and reads its records: a job is done (records, no failed
status), failed (a status such as `non-finite: ...`, `error: ...`, `timeout: ...`, printed) or
missing (no readable records, or records of another job: their run id is not the one this
job's config gives, so a rerun computes it). Prints a summary line, then one line per failed or
missing job.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
from hydra import compose, initialize_config_dir
from hydra._internal.config_loader_impl import get_overrides_dirname
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from diffusion_rates.app import CONFIG_DIR, _compose, _expand, _one_line, _resolved_without_hydra
from diffusion_rates.records import RECORDS, code_version, failures, run_id


def jobs(overrides: list[str]) -> tuple[Path, list[str]]:
    """The sweep directory and every job's subdirectory, as a multirun with `overrides` makes."""
    root, batch = _batch(overrides)
    return root, list(batch)


def _batch(overrides: list[str]) -> tuple[Path, dict[str, list[str]]]:
    """The sweep directory and {job subdirectory: the job's overrides}."""
    with initialize_config_dir(CONFIG_DIR, version_base=None):
        cfg = compose("config", overrides=_expand(overrides)[0], return_hydra_config=True)
    own = [o for o in overrides if not o.lstrip("+~").startswith(("hydra.", "hydra/"))]
    params = [f"{k}={v}" for k, v in (cfg.hydra.sweeper.get("params") or {}).items()]
    parser = OverridesParser.create()
    (batch,) = BasicSweeper.split_arguments(parser.parse_overrides(params + own), None)
    names = cfg.hydra.job.config.override_dirname
    dirs = {
        get_overrides_dirname(
            parser.parse_overrides(job), list(names.exclude_keys), names.item_sep, names.kv_sep
        ): job
        for job in batch
    }
    return Path(cfg.hydra.sweep.dir), dirs


def _run_ids(batch: dict[str, list[str]]) -> dict[str, str]:
    """{job subdirectory: the run id its run would record}, from each job's config as the run
    sees it (not validated: a bad job is the sweep's to refuse); Hydra composes once per choice
    of config groups (app._compose)."""
    composed = {}
    with initialize_config_dir(CONFIG_DIR, version_base=None):
        return {
            sub: run_id(OmegaConf.to_container(_resolved_without_hydra(_compose(job, composed))))
            for sub, job in batch.items()
        }


def survey(overrides: list[str]) -> dict:
    """{"root": sweep dir, "done": [dir], "failed": [(dir, status)], "missing": [(dir, why)]}.
    Records written by other code (another code_version) count as missing: a rerun redoes them."""
    root, batch = _batch(overrides)
    expected = _run_ids(batch)
    out = {"root": root, "done": [], "failed": [], "missing": []}
    for sub in batch:
        path = root / sub / RECORDS
        try:
            frame = pd.read_parquet(path, columns=["run_id", "status", "code_version"])
        except Exception:  # absent or unreadable: the sweep will (re)compute it
            out["missing"].append((sub, "unreadable records" if path.exists() else "no records"))
            continue
        bad = failures(frame)
        versions = set(frame.code_version)
        if len(frame) == 0:
            out["missing"].append((sub, "empty records"))
        elif versions != {code_version()}:
            out["missing"].append((sub, f"records of code {', '.join(map(str, versions))}"))
        elif set(frame.run_id) != {expected[sub]}:  # copied, or a sweep that shared a folder
            found = ", ".join(sorted(map(str, set(frame.run_id))))
            out["missing"].append(
                (sub, f"records of another job (run_id {found}, not {expected[sub]})")
            )
        elif len(bad):
            out["failed"].append((sub, str(bad.status.iloc[0])))
        else:
            out["done"].append(sub)
    return out


def summary(got: dict) -> str:
    """`<root>: <total> jobs: <done> done, <failed> failed, <missing> missing`."""
    total = sum(len(got[k]) for k in ("done", "failed", "missing"))
    return (
        f"{got['root']}: {total} jobs: {len(got['done'])} done, "
        f"{len(got['failed'])} failed, {len(got['missing'])} missing"
    )


def mark_done(argv: list[str], path: Path, fingerprint: str) -> str:
    """After a sweep: its summary; and when every job is done (none failed or missing), write
    `<fingerprint> <number of record files under the sweep's root>` to `path`, the line
    `make reproduce` compares to skip the sweep."""
    got = survey([a for a in argv if a not in ("-m", "--multirun")])
    if not got["failed"] and not got["missing"]:
        count = len(list(Path(got["root"]).rglob(RECORDS)))
        path.write_text(f"{fingerprint} {count}\n")
    return summary(got)


def main(argv: list[str] | None = None) -> int:
    argv = [a for a in (sys.argv[1:] if argv is None else argv) if a not in ("-m", "--multirun")]
    if any(a.startswith("-") for a in argv):
        print(__doc__.splitlines()[0], file=sys.stderr)
        return 2
    try:
        got = survey(argv)
    except Exception as exc:
        print(f"diffusion-rates-status: {_one_line(exc)}", file=sys.stderr)
        return 2
    print(summary(got))
    if not Path(got["root"]).exists():  # runs/ is relative to the sweep's working directory
        print(
            f"{got['root']} does not exist in {Path.cwd()}: run the status command where the "
            "sweep ran, or give its hydra.sweep.dir"
        )
    for sub, reason in got["failed"]:
        print(f"failed   {sub}   {reason}")
    for sub, why in got["missing"]:
        print(f"missing  {sub}   {why}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
