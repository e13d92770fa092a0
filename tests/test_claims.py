"""Every claim's smoke sweep, end to end: configs → runs → records → fits → verdicts → report.

The jobs run in this process (the Hydra launchers are tested in test_app and test_sweeps), with
the same composition the command line uses, so compiled code is shared between jobs.
"""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from diffusion_rates import app, rates
from experiments import EXPERIMENTS

ROOT = Path(__file__).resolve().parents[1]


def sweep(name: str, runs: Path) -> int:
    """Run the smoke scale of configs/experiment/<name>.yaml into runs/<name>; the job count."""
    with initialize_config_dir(app.CONFIG_DIR, version_base=None):
        base = compose(
            "config", overrides=[f"experiment={name}", "scale=smoke"], return_hydra_config=True
        )
        params = OmegaConf.to_container(base.hydra.sweeper.params, resolve=True)
        grid = [[]]  # the basic sweeper's jobs: the product of the swept values
        for key, value in params.items():
            grid = [g + [f"{key}={v}"] for g in grid for v in str(value).split(",")]
        for i, job in enumerate(grid):
            cfg = compose(
                "config",
                overrides=[
                    f"experiment={name}",
                    "scale=smoke",
                    *job,
                    f"output.dir={runs / name / f'job{i}'}",
                    f"output.networks={runs / 'networks'}",
                ],
            )
            app.run(cfg)
    return len(grid)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    results = tmp_path_factory.mktemp("results")
    # a sweep two claims read (lcw_score_error) runs once
    names = dict.fromkeys(s for exp in EXPERIMENTS for s in exp.SWEEPS)
    counts = {s: sweep(s, runs) for s in names}
    done = subprocess.run(
        [
            sys.executable,
            "scripts/report.py",
            "--runs",
            str(runs),
            "--results",
            str(results),
            "--scale",
            "smoke",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    return runs, results, counts


@pytest.mark.parametrize("exp", EXPERIMENTS, ids=[e.NAME for e in EXPERIMENTS])
def test_each_claim_has_records_fits_figures_and_a_section(report, exp):
    runs, results, counts = report
    recs = pd.read_parquet(results / exp.NAME / "records.parquet")
    assert recs.run_id.nunique() == sum(counts[s] for s in exp.SWEEPS)
    assert set(recs.experiment) == set(exp.SWEEPS)
    fits = pd.read_csv(results / exp.NAME / "fits.csv")
    assert len(fits) > 0
    for png in (results / exp.NAME).glob("*.png"):
        assert png.stat().st_size > 5_000
    text = (results / "REPORT.md").read_text()
    assert f"## {exp.NAME}" in text


def test_verdicts_are_computed_from_the_fits(report):
    """Each verdict in fits.csv is rates.verdict of its own exponent and interval, and each
    headline row of the report counts those verdicts."""
    _, results, _ = report
    summary = pd.read_csv(results / "summary.csv")
    text = (results / "REPORT.md").read_text()
    for exp in EXPERIMENTS[1:]:  # the claims (gaussian_baseline is the calibration)
        fits = pd.read_csv(results / exp.NAME / "fits.csv")
        assert set(fits.verdict) <= set(rates.VERDICTS)
        for row in fits.itertuples():
            fit = rates.Fit(row.slope, np.nan, np.nan, row.ci_low, row.ci_high, row.n_points, [])
            expected = rates.verdict(fit, row.predicted, row.tolerance, row.lower_is_better)
            assert row.verdict == expected, row
        for row in summary[summary.claim == exp.NAME].itertuples():
            group = fits[(fits.fit == row.quantity) & fits.headline]
            counts = group.verdict.value_counts()
            assert row.verdict == ", ".join(f"{v} {n}/{len(group)}" for v, n in counts.items())
            assert f"| {exp.NAME} | {row.quantity} |" in text


def test_learned_scores_are_compared_with_the_bias_error_and_profiled(report):
    """The learned_score section has its learned-against-bias table and the error profile of
    every network over the noise levels, measured in the report's own folder of networks."""
    runs, results, _ = report
    text = (results / "REPORT.md").read_text()
    assert "| claim | metric vs | learned exponent [95%] |" in text
    assert "### The learned error over noise levels" in text
    profile = pd.read_csv(results / "learned_score" / "profile.csv")
    assert set(profile.target) == {"lcw_gmm", "gaussian"}
    assert (profile.error_sq > 0).all() and profile.run.nunique() == 4
    assert len(list((runs / "networks").glob("*.npz"))) == 4
