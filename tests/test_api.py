"""The Python API: the command line's values for the same config, bit for bit; its errors; the
examples."""

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir

import diffusion_rates as dr
from diffusion_rates import app, config, metrics
from diffusion_rates.validation import ConfigError

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def cli(tmp_path, overrides) -> pd.DataFrame:
    """The records `diffusion-rates <overrides>` writes (through app.run, as its Hydra job)."""
    with initialize_config_dir(app.CONFIG_DIR, version_base=None):
        cfg = compose("config", overrides=[*overrides, f"output.dir={tmp_path}"])
    return pd.read_parquet(app.run(cfg))


def same_bits(got: dict, records: pd.DataFrame) -> None:
    assert sorted(got) == sorted(records.metric)
    for row in records.itertuples():
        m = got[row.metric]
        want = (row.value, row.stderr, row.floor, row.status, row.estimator, row.reduction)
        for a, b in zip(m, want, strict=True):
            assert a == b or (isinstance(a, float) and math.isnan(a) and math.isnan(b)), (m, row)


# (the command line's overrides, the same run through the API's functions, the estimators)
CASES = [
    (
        [
            "target=gaussian",
            "target.d=6",
            "target.spectrum=power_law",
            "sampler=ddpm",
            "schedule=bbdd",
            "steps=24",
            "T=6.0",
            "n_samples=256",
            "metrics=[kl,w2]",
        ],
        lambda: dr.measure(
            ["kl", "w2"],
            dr.target("gaussian", d=6, spectrum="power_law"),
            "ddpm",
            dr.grid(schedule="bbdd", steps=24, T=6.0),
            n=256,
        ),
        {"exact_gaussian"},
    ),
    (
        [
            "target=gmm",
            "target.d=3",
            "steps=16",
            "n_samples=256",
            "seed=3",
            "metrics=[tv,w2]",
            "density_ratio.max_paths=32",
        ],
        lambda: dr.measure(
            ["tv", "w2"],
            dr.target("gmm", d=3),
            "ei",
            dr.grid(steps=16),
            n=256,
            seed=3,
            density_ratio={"max_paths": 32},
        ),
        {"density_ratio", "gaussian_fit"},
    ),
]


@pytest.mark.parametrize("overrides,through_api,estimators", CASES, ids=["exact", "monte_carlo"])
def test_the_api_gives_the_command_lines_values(tmp_path, overrides, through_api, estimators):
    records = cli(tmp_path, overrides)
    assert estimators <= set(records.estimator)
    same_bits(through_api(), records)
    same_bits(dr.run(*overrides), records)


def test_sample_is_the_output_the_estimators_compare():
    q, g = dr.target("gmm", d=3), dr.grid(steps=16)
    x = dr.sample(q, "ei", g, n=128, seed=5, init="target", score_error=("bias", 0.1))
    with initialize_config_dir(app.CONFIG_DIR, version_base=None):
        cfg = compose(
            "config",
            overrides=[
                "target=gmm",
                "target.d=3",
                "steps=16",
                "n_samples=128",
                "seed=5",
                "init=target",
                "score_error=bias",
                "score_error.eps=0.1",
            ],
        )
    run = config.build(cfg)
    assert x.shape == (128, 3) and run.settings.score_error == "bias"
    np.testing.assert_array_equal(x, metrics.sampler_output(run))


@pytest.mark.parametrize(
    "call,argv",
    [
        (lambda: dr.target("gaussian", d=0), ["target.d=0"]),
        (lambda: dr.target("gaussian", dd=3), ["target.dd=3"]),
        (lambda: dr.target("banana"), ["target=banana"]),
        (lambda: dr.grid(schedule="lcw", steps=16), ["schedule=lcw", "steps=16"]),
        (lambda: dr.sample(dr.target("gmm"), "foo", dr.grid(), 8), ["target=gmm", "sampler=foo"]),
        (lambda: dr.run("estimator.kl=banana"), ["estimator.kl=banana"]),
    ],
    ids=["value", "unknown key", "unknown target", "schedule", "sampler", "estimator"],
)
def test_bad_input_is_the_command_lines_one_line_error(call, argv):
    with pytest.raises(ConfigError) as cli_error:
        app.check_command_line(argv)
    with pytest.raises(ConfigError) as api_error:
        call()
    assert str(api_error.value) == str(cli_error.value) and "\n" not in str(api_error.value)


def test_values_keep_their_type_on_the_way_to_the_config():
    q = dr.target("gaussian", d=np.int64(3), spectrum="power_law", mean_norm=1, rotate=True)
    assert q.overrides == (
        "target=gaussian",
        "target.d=3",
        "target.spectrum='power_law'",
        "target.mean_norm=1",
        "target.rotate=true",
    )
    assert q.law.d == 3
    assert dr.grid(steps=8, delta=0.01).grid.s[-1] == 0.01


@pytest.mark.parametrize("script", ["one_run.py", "small_sweep.py"])
def test_examples_run(script, tmp_path):
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / script), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    if script == "one_run.py":
        assert "KL = " in done.stdout and "quadrature" in done.stdout
    else:
        slope = float(done.stdout.split("N^")[1].split()[0])
        assert slope == pytest.approx(-2.0, abs=0.3) and (tmp_path / "small_sweep.png").exists()
