"""The command line: one run, the cache, bad input, and a smoke sweep through the report."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from diffusion_rates import compile_cache
from diffusion_rates.app import check_command_line
from diffusion_rates.records import COLUMNS
from diffusion_rates.validation import ConfigError

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "diffusion_rates"]


def run_cli(*args, cwd=ROOT):
    return subprocess.run([*CLI, *args], cwd=cwd, capture_output=True, text=True, timeout=600)


def test_one_run_writes_records_and_is_cached(tmp_path):
    args = [
        "target=gaussian",
        "target.d=100",
        "sampler=ei",
        "schedule=bbdd",
        "steps=64",
        "delta=1e-3",
        "T=5",
        "metrics=[kl,w2]",
        f"output.dir={tmp_path}",
    ]
    first = run_cli(*args)
    assert first.returncode == 0, first.stderr
    path = tmp_path / "records.parquet"
    frame = pd.read_parquet(path)
    assert list(frame.columns) == COLUMNS
    assert sorted(frame.metric) == ["eps_score_sq_mean", "eps_score_sq_weighted", "kl", "w2"]
    measured = frame[frame.metric.isin(["kl", "w2"])]
    assert set(measured.estimator) == {"exact_gaussian"} and set(frame.status) == {"ok"}
    assert frame.run_id.nunique() == 1 and np.all(measured.value > 0)
    assert np.all(frame[frame.metric.str.startswith("eps")].value == 0)  # score_error=none
    assert (tmp_path / "config.yaml").is_file()
    stamp = path.stat().st_mtime_ns
    again = run_cli(*args)
    assert again.returncode == 0 and "cached" in again.stdout
    assert path.stat().st_mtime_ns == stamp
    forced = run_cli(*args, "force=true")
    assert forced.returncode == 0 and path.stat().st_mtime_ns != stamp
    assert pd.read_parquet(path).value.tolist() == frame.value.tolist()


BAD = [
    (["sampler=foo"], "sampler"),
    (["schedule=linear"], "schedule"),
    (["process=ve"], "process"),
    (["target=banana"], "target"),
    (["steps=0"], "steps"),
    (["steps=abc"], "steps"),
    (["steps=2.5"], "steps"),
    (["delta=-1"], "delta"),
    (["T=5", "delta=5"], "delta"),
    (["delta=abc"], "delta"),
    (["T=-1"], "T"),
    (["process=vp_linear", "T=6"], "T"),
    (["target.d=0"], "target.d"),
    (["target.spectrum=banana"], "target.spectrum"),
    (["target.mean_norm=-1"], "target.mean_norm"),
    (["schedule=bbdd", "delta=0"], "delta"),
    (["metrics=[kl,tv2]"], "metrics"),
    (["init=zero"], "init"),
    (["precision=float16"], "precision"),
    (["n_samples=0"], "n_samples"),
    (["stepz=3"], "stepz"),
    (["target.dd=3"], "target.dd"),
    (["-m", "steps=8,0"], "steps"),
    (["score_error=bias", "score_error.eps=-0.1"], "score_error.eps"),
    (["score_error=typo"], "score_error"),
    # no exact law (ŝ not affine) and no density for DDIM's deterministic steps
    (["score_error=noise", "sampler=ddim", "metrics=[kl]"], "metrics"),
    # density_ratio: budgets, floor target, and a span reduction where it does not hold
    (["density_ratio.paths=0"], "density_ratio.paths"),
    (["density_ratio.paths=3"], "density_ratio.paths"),
    (["density_ratio.paths=2"], "density_ratio.paths"),
    (["density_ratio.max_paths=8"], "density_ratio.max_paths"),
    (["density_ratio.floor_target=0"], "density_ratio.floor_target"),
    (["density_ratio.reduction=half"], "density_ratio.reduction"),
    (
        ["target=gmm", "target.K=2", "target.scale=[1.0,2.0]", "density_ratio.reduction=span"],
        "density_ratio.reduction",
    ),
    (
        [
            "target=lcw_gmm",
            "score_error=bias",
            "score_error.eps=0.1",
            "density_ratio.reduction=span",
        ],
        "density_ratio.reduction",
    ),
    (["target=gaussian", "density_ratio.reduction=span"], "density_ratio.reduction"),
    (["target=point_cloud", "delta=0", "density_ratio.reduction=span"], "density_ratio.reduction"),
]


@pytest.mark.parametrize("argv,key", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_is_one_line_naming_the_key(argv, key):
    with pytest.raises(ConfigError) as info:
        check_command_line(argv)
    message = str(info.value)
    assert message.startswith(f"{key}:") and "\n" not in message, message


def test_negative_spectrum_value_is_refused(tmp_path):
    spectrum = tmp_path / "spectrum.npy"
    np.save(spectrum, np.array([1.0, -0.5, 0.2]))
    with pytest.raises(ConfigError, match=r"^target.spectrum_file:"):
        check_command_line(
            ["target.spectrum=file", f"target.spectrum_file={spectrum}", "target.d=3"]
        )


def test_bad_input_exits_non_zero_and_writes_nothing(tmp_path):
    result = run_cli("steps=0", f"output.dir={tmp_path / 'out'}")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "steps:" in result.stderr
    assert not (tmp_path / "out").exists()


def test_a_sweep_over_seeds_compiles_once(tmp_path, monkeypatch):
    """Two runs in separate processes that differ only in the seed: the second finds every
    program it needs in the persistent compilation cache and adds none (keys are arguments of
    the compiled programs, not constants)."""
    cache = tmp_path / "cache"
    monkeypatch.setenv(compile_cache.ENV, str(cache))
    common = ["target=gmm", "target.d=4", "metrics=[w2,strong]", "n_samples=64", "steps=8"]

    def entries():
        return sorted(p.name for p in cache.glob("*-cache"))

    done = run_cli(*common, "seed=0", f"output.dir={tmp_path / 'a'}")
    assert done.returncode == 0, done.stderr
    first = entries()
    assert first
    done = run_cli(*common, "seed=1", f"output.dir={tmp_path / 'b'}")
    assert done.returncode == 0, done.stderr
    assert entries() == first


def test_float32_run_records_its_precision_and_keeps_exact_laws_in_float64(tmp_path):
    """precision=float32: the sampler's Monte Carlo W2 moves by rounding only, and the exact
    Gaussian KL (float64 whatever the precision) is the float64 run's to the last digit."""
    common = ["target=gaussian", "target.d=3", "metrics=[kl,w2]", "estimator.w2=gaussian_fit"]
    values = {}
    for precision in ("float64", "float32"):
        out = tmp_path / precision
        done = run_cli(*common, f"precision={precision}", f"output.dir={out}")
        assert done.returncode == 0, done.stderr
        frame = pd.read_parquet(out / "records.parquet").set_index("metric")
        assert set(frame.precision) == {precision}
        values[precision] = frame.value
    assert values["float32"]["kl"] == values["float64"]["kl"]
    w2_64, w2_32 = values["float64"]["w2"], values["float32"]["w2"]
    assert w2_32 != w2_64 and abs(w2_32 - w2_64) < 1e-4 * w2_64
