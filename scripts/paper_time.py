"""Estimated time of `make reproduce SCALE=paper`, per claim, from the default scale's records.

    python scripts/paper_time.py [--runs runs]     (after `make reproduce` at the default scale)

For each sweep, every default-scale job's measured `wall_s` is fitted as a + b·w, w the job's
work N·d·K·n·M (steps × dimension × components × n_samples × density_ratio.max_paths: the size
of its Monte Carlo loops; a is what a job costs whatever its size: compilation, exact laws,
overhead), by least squares with a, b ≥ 0.
The paper-scale estimate is Σ (a + b·w) over the paper sweep's jobs, w from each job's own
overrides and the paper scale's sizes. It is the time on the machine that measured the default
scale, one sweep at a time, so an upper bound for a GPU, whose throughput on these loops has
not been measured (no GPU was available): an estimate to plan with, not a result.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from diffusion_rates.app import CONFIG_DIR
from diffusion_rates.status import jobs
from experiments import EXPERIMENTS


def work(jobs: pd.DataFrame) -> np.ndarray:
    return jobs[["steps", "d", "K", "n_samples", "max_paths"]].to_numpy(float).prod(axis=1)


def sweep_jobs(sweep: str, scale: str) -> pd.DataFrame:
    """The job directory and the sizes of `work` of every job of a sweep (its overrides, else
    the experiment's config at that scale)."""
    with initialize_config_dir(CONFIG_DIR, version_base=None):
        base = compose("config", overrides=[f"experiment={sweep}", f"scale={scale}"])
    base = OmegaConf.to_container(base, resolve=False)
    base["output"] = {"dir": "unused"}
    base = OmegaConf.create(base)
    _, dirs = jobs([f"experiment={sweep}", f"scale={scale}"])
    rows = []
    for job in dirs:
        over = dict(item.split("=", 1) for item in job.split(",") if "=" in item)
        rows.append(
            dict(
                job=job,
                steps=int(over.get("steps", base.steps)),
                d=int(over.get("target.d", base.target.get("d") or 1)),
                K=int(over.get("target.K", base.target.get("K") or 1)),
                n_samples=int(base.n_samples),
                max_paths=int(base.density_ratio.max_paths),
            )
        )
    return pd.DataFrame(rows)


def fit(jobs: pd.DataFrame) -> tuple[float, float]:
    """(a, b) of wall_s ≈ a + b·w, least squares with a, b >= 0."""
    w = work(jobs)
    y = jobs.wall_s.to_numpy(float)
    design = np.stack([np.ones_like(w), w], axis=1)
    (a, b), *_ = np.linalg.lstsq(design, y, rcond=None)
    if b < 0:
        return float(y.mean()), 0.0
    if a < 0:
        return 0.0, float((w @ y) / (w @ w))
    return float(a), float(b)


def wall(job_dir: Path) -> float:
    """The measured wall time of a job, NaN without records."""
    try:
        return float(pd.read_parquet(job_dir / "records.parquet", columns=["wall_s"]).wall_s[0])
    except (OSError, ValueError, IndexError):
        return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=Path("runs"))
    args = parser.parse_args()
    rows = []
    for exp in EXPERIMENTS:
        for sweep in exp.SWEEPS:
            default = sweep_jobs(sweep, "default")
            default["wall_s"] = [wall(args.runs / sweep / job) for job in default.job]
            default = default.dropna()
            if default.empty:
                continue
            a, b = fit(default)
            paper = sweep_jobs(sweep, "paper")
            rows.append(
                dict(
                    claim=exp.NAME,
                    sweep=sweep,
                    default_jobs=len(default),
                    default_s=default.wall_s.sum(),
                    paper_jobs=len(paper),
                    paper_estimate_h=(a * len(paper) + b * work(paper).sum()) / 3600,
                )
            )
    table = pd.DataFrame(rows)
    total = table.groupby("claim")[["paper_jobs", "paper_estimate_h"]].sum()
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    print(total.to_string(float_format=lambda v: f"{v:.3g}"))


if __name__ == "__main__":
    main()
