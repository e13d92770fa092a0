"""Sweeps that scale and survive: launchers, a killed sweep resumed, failures as records, status.

One uninterrupted sweep (submitit_local, each job its own process) is the reference the others
are checked against; its grid holds diverging jobs (T = 2500 with steps of 5 or more: Euler-
Maruyama multiplies the variance by (h - 1)² per step) beside good ones.
"""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from diffusion_rates import app, metrics, records, status

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "diffusion_rates"]
GRID = [
    "target=gaussian",
    "target.d=2",
    "metrics=[kl]",
    "sampler=ei,em",
    "steps=8,500",
    "T=10,2500",
]
N_JOBS = 8
# configs/hydra/launcher/*.yaml replace the plugins' configs; Hydra warns that it checks them
# against the plugins' schemas (the app silences this; pytest resets warning filters per test)
pytestmark = pytest.mark.filterwarnings("ignore:(?s).*validated against ConfigStore schema")
SAME = ["run_id", "metric", "estimator", "value", "stderr", "floor", "status"]


def sweep(root, *extra):
    return [*CLI, "-m", *GRID, f"hydra.sweep.dir={root}", *extra]


def job_records(root: Path) -> dict[str, pd.DataFrame]:
    """{job directory: its records}, every records.parquet under the sweep directory."""
    found = {}
    for path in sorted(root.rglob(records.RECORDS)):
        frame = pd.read_parquet(path)
        found[path.parent.relative_to(root).as_posix()] = frame.sort_values("metric")
    return found


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The grid swept without interruption by the submitit_local launcher."""
    root = tmp_path_factory.mktemp("reference")
    args = sweep(root, "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=5")
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return root


@pytest.mark.slow  # the joblib launcher's tests cover the local-launcher path in make test
def test_submitit_local_sweep_writes_every_job(reference):
    found = job_records(reference)
    assert len(found) == N_JOBS and (reference / ".submitit").is_dir()
    assert all(
        set(f.metric) == {"kl", "eps_score_sq_mean", "eps_score_sq_weighted"}
        for f in found.values()
    )


def test_diverging_run_is_a_record_and_the_sweep_goes_on(reference):
    kl = pd.concat(job_records(reference).values()).query("metric == 'kl'")
    assert len(kl) == N_JOBS
    diverged = kl[(kl.sampler == "em") & (kl["T"] == 2500) & (kl.steps == 500)]
    assert len(diverged) == 1 and diverged.status.iloc[0].startswith("non-finite")
    good = kl[kl["T"] == 10]
    assert len(good) == 4 and set(good.status) == {"ok"} and good.value.gt(0).all()
    # At T = 2500 ei overflows (e^{2T} in its moments) and em's 500 steps diverge; em's 8 steps
    # of h ≈ 312 give a huge but finite variance (≈ 311^16): a finite KL, recorded as ok.
    failed = records.failures(kl)
    assert len(failed) == 3 and set(failed["T"]) == {2500}
    finite = kl[(kl.sampler == "em") & (kl["T"] == 2500) & (kl.steps == 8)]
    assert finite.status.iloc[0] == "ok" and np.isfinite(finite.value.iloc[0])


def test_killed_joblib_sweep_resumes_to_the_same_records(reference, tmp_path):
    root = tmp_path / "killed"
    args = sweep(root, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2")
    proc = subprocess.Popen(
        args,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: the loky workers die with it
    )
    deadline = time.monotonic() + 300
    while not any(root.rglob(records.RECORDS)) and proc.poll() is None:
        assert time.monotonic() < deadline, "no records after 300 s"
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(0.5)
    before = {p: p.stat().st_mtime_ns for p in root.rglob(records.RECORDS)}
    assert 0 < len(before) < N_JOBS, f"{len(before)} jobs done when killed"

    again = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert {p: p.stat().st_mtime_ns for p in before} == before  # finished jobs were skipped
    resumed, expected = job_records(root), job_records(reference)
    assert sorted(resumed) == sorted(expected)  # one readable file per job, no more
    everything = pd.concat(resumed.values())
    assert everything.run_id.nunique() == N_JOBS
    assert not everything.duplicated(["run_id", "metric"]).any()
    for job, frame in resumed.items():
        pd.testing.assert_frame_equal(
            frame[SAME].reset_index(drop=True), expected[job][SAME].reset_index(drop=True)
        )


def test_status_lists_done_failed_and_missing_jobs(reference, tmp_path, capsys):
    root = tmp_path / "partial"
    shutil.copytree(reference, root)
    good = sorted(p.parent for p in root.rglob(records.RECORDS) if "T=10," in p.parent.name)
    shutil.rmtree(good[0])  # never ran
    (good[1] / records.RECORDS).write_bytes(b"not parquet")  # killed mid-write, say
    argv = ["-m", *GRID, f"hydra.sweep.dir={root}"]
    got = status.survey(argv[1:])
    assert (len(got["done"]), len(got["failed"]), len(got["missing"])) == (3, 3, 2)
    assert all(reason.startswith("non-finite") for _, reason in got["failed"])
    assert {why for _, why in got["missing"]} == {"no records", "unreadable records"}
    assert status.main(argv) == 0
    out = capsys.readouterr().out
    assert f"{root}: 8 jobs: 3 done, 3 failed, 2 missing" in out
    assert out.count("\nfailed ") == 3 and out.count("\nmissing ") == 2
    # aggregation takes the partial sweep, skipping the unreadable file, and draws no bar here
    frame = records.collect(root)
    assert frame.run_id.nunique() == 6 and "records" not in capsys.readouterr().err
    assert status.main(["experiment=no_such_claim"]) == 2


def test_a_sweep_is_marked_done_only_when_every_job_is(reference, tmp_path):
    """`status.mark_done` (what `make reproduce` skips a sweep by): not with failed jobs;
    with the fingerprint and the number of record files when every job of the sweep is done."""
    done = tmp_path / ".done-test"
    argv = ["-m", *GRID, f"hydra.sweep.dir={reference}"]
    assert status.mark_done(argv, done, "abc").endswith("3 failed, 0 missing")
    assert not done.exists()
    good = [g if not g.startswith("T=") else "T=10" for g in GRID]  # the finite half
    assert status.mark_done(["-m", *good, f"hydra.sweep.dir={reference}"], done, "abc").endswith(
        ": 4 jobs: 4 done, 0 failed, 0 missing"
    )
    assert done.read_text() == f"abc {N_JOBS}\n"


def _config(tmp_path, *overrides):
    with initialize_config_dir(app.CONFIG_DIR, version_base=None):
        return compose("config", overrides=[*overrides, f"output.dir={tmp_path}"])


def test_same_config_and_seed_give_identical_records(tmp_path):
    cfg = _config(
        tmp_path,
        "target.d=2",
        "sampler=em",
        "steps=64",  # at 16 steps the density-ratio KL misses its floor target (a status)
        "metrics=[kl,w2]",
        "estimator.w2=gaussian_fit",
        "n_samples=512",
        "score_error=bias",
        "score_error.eps=0.1",
        "seed=3",
    )
    first = pd.read_parquet(app.run(cfg))
    cfg.force = True
    second = pd.read_parquet(app.run(cfg))
    assert set(first.status) == {"ok"} and (first.value > 0).all()
    pd.testing.assert_frame_equal(first[SAME], second[SAME])


def test_an_exception_or_a_timeout_is_a_record_and_is_retried(tmp_path, monkeypatch):
    cfg = _config(tmp_path, "target.d=2", "steps=8", "metrics=[kl,w2]")

    def boom(built):
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(metrics, "measure", boom)
    frame = pd.read_parquet(app.run(cfg))
    assert list(frame.status) == ["error: RuntimeError: boom"] * 2 and frame.value.isna().all()
    assert not records.cached(tmp_path, frame.run_id.iloc[0])  # a rerun tries again

    monkeypatch.setattr(metrics, "measure", lambda built: time.sleep(5))
    monkeypatch.setenv(app.TIMEOUT_ENV, "0.2")
    frame = pd.read_parquet(app.run(cfg))
    assert frame.status.str.startswith("timeout: the run took over 0.2 s").all()
    assert len(records.failures(frame)) == 2


# Kinds of bad input that tests/test_app.py's BAD list (25 cases) does not cover: a deleted
# (missing) required key, and the launcher's own keys.
BAD_SWEEPS = [
    (["~steps"], "steps"),
    (["~target.d"], "target.d"),
    (["-m", "hydra/launcher=slurm"], "hydra/launcher"),
    (["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=abc"], "hydra.launcher.n_jobs"),
    (["-m", "hydra/launcher=submitit_slurm", "hydra.launcher.partitio=gpu"], "hydra.launcher"),
]


@pytest.mark.parametrize("argv,key", BAD_SWEEPS, ids=[" ".join(a) for a, _ in BAD_SWEEPS])
def test_bad_sweep_is_one_line_naming_the_key_and_writes_nothing(
    argv, key, tmp_path, capsys, monkeypatch
):
    monkeypatch.setattr(sys, "argv", ["diffusion-rates", *argv, f"hydra.sweep.dir={tmp_path}/s"])
    monkeypatch.setattr(app, "_launches_elsewhere", lambda argv: False)  # JAX is up here already
    with pytest.raises(SystemExit) as info:
        app.main()
    message = capsys.readouterr().err
    assert info.value.code == 2 and message.count("\n") == 1, message
    assert message.startswith(f"diffusion-rates: {key}") and not (tmp_path / "s").exists()


def test_launcher_configs_compose():
    with initialize_config_dir(app.CONFIG_DIR, version_base=None):
        joblib = compose("config", ["hydra/launcher=joblib"], return_hydra_config=True)
        ray = compose("config", ["hydra/launcher=ray"], return_hydra_config=True)
    assert joblib.hydra.launcher.n_jobs == 2 and joblib.hydra.launcher.backend == "loky"
    assert ray.hydra.launcher._target_.endswith("RayLauncher")
    assert app._launches_elsewhere(["-m", "hydra/launcher=joblib"])
    assert not app._launches_elsewhere(["-m", "steps=8,16"])
    # the whole command line of a cluster sweep is checked before anything starts
    app.check_command_line(
        ["-m", *GRID, "hydra/launcher=submitit_slurm", "hydra.launcher.partition=gpu"]
    )


def test_submitit_slurm_composes_and_renders_its_batch_script(tmp_path, monkeypatch):
    import submitit
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
    from omegaconf import OmegaConf
    from submitit.slurm.slurm import _make_sbatch_string

    overrides = [
        "hydra/launcher=submitit_slurm",
        "hydra.launcher.partition=x",
        "hydra.launcher.account=proj",
        "hydra.launcher.timeout_min=90",
        "hydra.launcher.gpus_per_node=1",
        "hydra.launcher.array_parallelism=16",
        f"hydra.sweep.dir={tmp_path}",
    ]
    with initialize_config_dir(app.CONFIG_DIR, version_base=None):
        cfg = compose("config", overrides, return_hydra_config=True)
    launcher = instantiate(cfg.hydra.launcher)
    assert type(launcher).__name__ == "SlurmLauncher"
    # As the plugin's launch() does, without a cluster: a stand-in srun satisfies submitit.
    (tmp_path / "srun").write_text("#!/bin/sh\n")
    (tmp_path / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    params = dict(launcher.params)
    executor = submitit.AutoExecutor(cluster="slurm", folder=params.pop("submitit_folder"))
    base = set(OmegaConf.structured(BaseQueueConf).keys())
    params.pop("max_num_timeout")
    executor.update_parameters(**{k if k in base else f"slurm_{k}": v for k, v in params.items()})
    script = _make_sbatch_string(
        command="python -m submitit.core._submit",
        folder=tmp_path,
        map_count=100,  # a 100-job sweep, 16 at a time
        **executor._executor.parameters,
    )
    lines = ["--partition=x", "--account=proj", "--time=90", "--gpus-per-node=1", "--array=0-99%16"]
    for line in lines:
        assert f"#SBATCH {line}\n" in script, script
