"""How far float32 moves each estimator's values: the same sweep in both precisions, job by job.

    diffusion-rates -m experiment=<sweep> precision=float32     (next to the float64 sweep)
    python scripts/precision.py <sweep> [<sweep> ...] [--runs runs] [--out results/precision.csv]

Pairs every float32 job of a sweep with the float64 job of the same overrides (same seed, so the
same normals: `noise.normal` draws them in float32 for both), and reports per sweep, metric and
estimator: the number of pairs, the median and largest |v32 − v64| / v64, and the largest
|v32 − v64| / s.e. (s.e. of the float64 value; none where the value is exact), and the median
speed-up of the whole run (wall_s in float64 over float32; compilation included, runs of one
sweep at a time). Differences far below one s.e. mean float32 changes nothing a fit can see.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from diffusion_rates import records

KEYS = ["run_dir", "metric"]


def paired(root: Path) -> pd.DataFrame:
    """The float32 and float64 rows of each (job without its precision override, metric)."""
    frames = []
    for path in sorted(root.rglob(records.RECORDS)):
        job = ",".join(p for p in path.parent.name.split(",") if not p.startswith("precision="))
        frames.append(pd.read_parquet(path).assign(run_dir=job))
    frame = pd.concat(frames, ignore_index=True)
    single = frame[frame.precision == "float32"].set_index(KEYS)
    double = frame[frame.precision == "float64"].set_index(KEYS)
    both = single.join(double, lsuffix="_32", rsuffix="_64", how="inner")
    return both[both.status_32.eq("ok") & both.status_64.eq("ok")]


def summary(sweep: str, both: pd.DataFrame) -> pd.DataFrame:
    gap = (both.value_32 - both.value_64).abs()
    both = both.assign(
        rel=gap / both.value_64.abs(),
        z=np.where(both.stderr_64 > 0, gap / both.stderr_64, np.nan),
        speedup=both.wall_s_64 / both.wall_s_32,
    )
    out = both.groupby(["metric", "estimator_64"]).agg(
        pairs=("rel", "size"),
        median_rel=("rel", "median"),
        max_rel=("rel", "max"),
        max_z=("z", "max"),
        speedup=("speedup", "median"),
    )
    return out.reset_index().rename(columns={"estimator_64": "estimator"}).assign(sweep=sweep)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweeps", nargs="+")
    parser.add_argument("--runs", type=Path, default=Path("runs"))
    parser.add_argument("--out", type=Path, default=Path("results/precision.csv"))
    args = parser.parse_args()
    table = pd.concat([summary(s, paired(args.runs / s)) for s in args.sweeps])
    table = table[
        ["sweep", "metric", "estimator", "pairs", "median_rel", "max_rel", "max_z", "speedup"]
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.2g}"))


if __name__ == "__main__":
    main()
