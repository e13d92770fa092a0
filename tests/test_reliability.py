"""Issue 15: results never silently lost or stale (README, "Reliability").

Each test reproduces one way a result was lost or stale, in-process on tiny configs.
"""

import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir

from diffusion_rates import app, memory, metrics, records, status
from diffusion_rates.validation import ConfigError

pytestmark = pytest.mark.filterwarnings("ignore:(?s).*validated against ConfigStore schema")
ROOT = Path(__file__).resolve().parents[1]
TINY = ["target=gaussian", "target.d=2", "steps=4", "n_samples=64"]


def _config(out, *overrides):
    with initialize_config_dir(app.CONFIG_DIR, version_base=None):
        return compose("config", overrides=[*TINY, *overrides, f"output.dir='{out}'"])


OOM = (
    "RESOURCE_EXHAUSTED: Error dispatching computation: Error dispatching computation: "
    + "Error dispatching computation: " * 20
    + "Out of memory allocating 8000000000 bytes.\nsecond line"
)


def test_one_estimator_failing_keeps_the_others_rows(tmp_path, monkeypatch):
    """Item 3: an estimator that runs out of memory is its own error row, whose status keeps the
    cause; the exact kl of the same run keeps its value."""

    def oom(run, names, outputs):
        raise RuntimeError(OOM)

    fit = metrics.ESTIMATORS["gaussian_fit"]
    monkeypatch.setitem(metrics.ESTIMATORS, "gaussian_fit", fit._replace(measure=oom))
    cfg = _config(tmp_path, "metrics=[kl,w2]", "estimator.w2=gaussian_fit")
    frame = pd.read_parquet(app.run(cfg)).set_index("metric")
    assert frame.status["kl"] == "ok" and frame.estimator["kl"] == "exact_gaussian"
    assert frame.value["kl"] > 0
    w2 = frame.loc["w2"]
    assert w2.estimator == "gaussian_fit" and np.isnan(w2.value)
    assert w2.status.startswith("error: RuntimeError: RESOURCE_EXHAUSTED: Error dispatching")
    assert w2.status.endswith("Out of memory allocating 8000000000 bytes.")
    assert w2.status.count("Error dispatching computation") == 1


def test_run_id_covers_the_bytes_of_the_files_a_config_reads(tmp_path):
    """Item 2: the same path with other contents is another run, so the cache does not serve
    the old values."""
    spectrum = tmp_path / "spectrum.npy"
    np.save(spectrum, np.array([2.0, 1.0]))
    cfg = _config(tmp_path / "out", "target.spectrum=file", f"target.spectrum_file={spectrum}")
    first = pd.read_parquet(app.run(cfg))
    np.save(spectrum, np.array([4.0, 0.5]))
    second = pd.read_parquet(app.run(cfg))
    assert first.run_id.iloc[0] != second.run_id.iloc[0]
    assert not np.allclose(first.value, second.value)
    resolved = {"target": {"spectrum_file": str(spectrum)}}
    assert records.run_id(resolved) != records.run_id({"target": {"spectrum_file": "x"}})


@pytest.mark.parametrize(
    "argv",
    [
        ["-m", "steps=8,16,32", "output.dir=/tmp/x"],
        ["-m", "experiment=gaussian_baseline", "scale=smoke", "output.dir=/tmp/x"],
        ["-m", "steps=8,16", "hydra.sweep.subdir=same"],
    ],
)
def test_a_sweep_whose_jobs_share_an_output_dir_is_refused(argv):
    """Item 1: every job would write the same records.parquet, each over the last."""
    with pytest.raises(ConfigError, match=r"^(output\.dir|hydra\.sweep\.subdir): .*jobs"):
        app.check_command_line(argv)
    app.check_command_line(["-m", "steps=8", "output.dir=/tmp/x"])  # one job: its own folder
    app.check_command_line(["-m", "steps=8,16"])  # a folder per job


@pytest.mark.parametrize(
    "argv,key",
    [
        (["target=gmm", "target.K=10000000"], "target.K"),
        (["target=gmm", "n_samples=1000000000", "metrics=[kl]"], "n_samples"),
    ],
)
def test_sizes_that_cannot_fit_in_memory_are_refused_before_compute(argv, key, monkeypatch):
    """Item 4: refused in one line naming the key and the estimate, unless the machine is
    declared bigger."""
    with pytest.raises(ConfigError, match=rf"^{key}: .* GB") as info:
        app.check_command_line(argv)
    assert "\n" not in str(info.value) and memory.ENV in str(info.value)
    monkeypatch.setenv(memory.ENV, "1e6")
    app.check_command_line(argv)


def test_exact_estimators_need_no_samples_in_memory():
    app.check_command_line(["target=gaussian", "n_samples=1000000000", "metrics=[kl]"])


@pytest.mark.parametrize("where", ["/proc/x", "file/below"])
def test_an_unwritable_output_dir_is_refused_before_compute(where, tmp_path, monkeypatch):
    """Item 4: an output.dir that cannot be written stops the run before any compute."""
    (tmp_path / "file").write_text("")
    out = where if where.startswith("/") else tmp_path / where
    monkeypatch.setattr(metrics, "measure", lambda built: pytest.fail("computed"))
    with pytest.raises(ConfigError, match=r"^output\.dir: a folder this process can write"):
        app.run(_config(out))


@pytest.mark.parametrize("argv", [["+foo=1"], ["++steps=8"], ["-m", "+bar=1,2"]])
def test_adding_keys_is_refused(argv):
    """Item 8: `+key` would add a key no code reads, and change the run id."""
    with pytest.raises(ConfigError, match=r"^\+"):
        app.check_command_line(argv)


@pytest.mark.parametrize(
    "name,value",
    [
        ("DIFFUSION_RATES_TIMEOUT_S", "abc"),
        ("DIFFUSION_RATES_TIMEOUT_S", "-1"),
        ("DIFFUSION_RATES_MEMORY_GB", "lots"),
        ("DIFFUSION_RATES_DONE", "no-fingerprint"),
    ],
)
def test_malformed_environment_settings_are_refused(name, value, monkeypatch):
    """Item 8: a malformed setting is one line before anything runs, not an error per run."""
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=rf"^{name}: .*\(got '{value}'\)$"):
        app.check_environment()


@pytest.mark.parametrize(
    "content,why",
    [
        (np.ones((3, 2)), "a 1-D array"),
        (np.array(["a", "b", "c"]), "an array of numbers"),
        (b"not an npy file", "a .npy file"),
    ],
)
def test_a_spectrum_file_that_is_not_a_1d_float_array_is_refused_naming_the_key(
    content, why, tmp_path
):
    """Item 8: numpy's own message, or a 2-D array called "not finite", named no key."""
    path = tmp_path / "spectrum.npy"
    path.write_bytes(content) if isinstance(content, bytes) else np.save(path, content)
    argv = ["target.spectrum=file", f"target.spectrum_file={path}", "target.d=3"]
    with pytest.raises(ConfigError, match=rf"^target\.spectrum_file: {why}") as info:
        app.check_command_line(argv)
    assert "\n" not in str(info.value)


def test_status_and_aggregation_agree_on_records_of_another_job(tmp_path, capsys):
    """Item 5: a job folder holding another job's records (copied, or written by a sweep
    misconfigured before the refusal of item 1) is not done, and aggregation says what it
    drops instead of losing a point without a word."""
    grid = [*TINY, "steps=4,8", f"hydra.sweep.dir={tmp_path}"]
    root, dirs = status.jobs(grid)
    for sub in dirs:
        app.run(_config(root / sub, *sub.split(",")))
    assert len(status.survey(grid)["done"]) == 2
    first, second = (root / sub / records.RECORDS for sub in dirs)
    second.write_bytes(first.read_bytes())
    capsys.readouterr()
    got = status.survey(grid)
    assert got["done"] == [dirs[0]]
    ((sub, why),) = got["missing"]
    assert sub == dirs[1] and why.startswith("records of another job")
    frame = records.collect(root)
    assert frame.run_id.nunique() == 1
    said = capsys.readouterr().out
    assert "dropping" in said and str(second) in said and str(first) in said


def test_ctrl_c_is_one_line_and_leaves_no_partial_file(tmp_path, monkeypatch, capsys):
    """Item 8: a KeyboardInterrupt traceback, and a temporary file left half written."""

    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr(sys, "argv", ["diffusion-rates", *TINY, f"output.dir={tmp_path}"])
    monkeypatch.setattr(app, "_hydra_main", interrupted)
    with pytest.raises(SystemExit) as info:
        app.main()
    err = capsys.readouterr().err
    assert info.value.code == 130 and err.count("\n") == 1 and "interrupted" in err, err

    def half(path):
        path.write_bytes(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        records._atomic_write(tmp_path / records.RECORDS, half)
    assert list(tmp_path.iterdir()) == []


def test_status_run_elsewhere_says_where_runs_is(tmp_path, monkeypatch, capsys):
    """Item 8: runs/ is relative to the working directory; run from another one, the status
    command said every job was missing and no more."""
    monkeypatch.chdir(tmp_path)
    assert status.main([*TINY, "steps=4,8"]) == 0
    out = capsys.readouterr().out
    assert f"runs/single does not exist in {tmp_path}" in out


PARENT = """
import subprocess, sys
child = subprocess.Popen([sys.executable, "-c", '''
import os
from diffusion_rates import app
app._die_with_parent(os.getppid(), 0.05)
print("ready", flush=True)
import time
time.sleep(120)
'''], stdout=subprocess.PIPE, text=True)
assert child.stdout.readline() == "ready\\n"
print(child.pid, flush=True)
"""


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_a_worker_dies_with_the_process_that_launched_it(tmp_path):
    """Item 6: SIGKILL to a joblib sweep's parent left its workers running, one for 11 minutes.
    A worker whose launching process is gone kills itself (here that process simply exits)."""
    done = subprocess.run(
        [sys.executable, "-c", PARENT], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    pid = int(done.stdout.split()[-1])
    deadline = time.monotonic() + 30
    while app.alive(pid):
        assert time.monotonic() < deadline, "the orphan lives on"
        time.sleep(0.05)


def test_a_sweeps_check_composes_once_per_choice_of_config_groups(monkeypatch):
    """Item 8: a fully cached sweep still paid the pre-launch check, two Hydra compositions
    (~0.3 s each) per job; the jobs of one choice of groups now share them, and their configs
    are those Hydra composes job by job."""
    calls = []
    real = app.compose
    monkeypatch.setattr(app, "compose", lambda *a, **k: calls.append(a) or real(*a, **k))
    app.check_command_line(["-m", *TINY, "steps=4,5,6,7,8", "seed=0,1"])
    assert len(calls) == 2
    app.check_command_line(["-m", *TINY, "sampler=ei,em", "steps=4,5,6"])
    assert len(calls) == 2 + 4
    with initialize_config_dir(app.CONFIG_DIR, version_base=None):
        job = [*TINY, "sampler=em", "steps=5", "delta=0.01", "metrics=[kl,w2]"]
        fast = app.job_config(job, composed={})
        assert fast == app._resolved_without_hydra(real("config", overrides=job))


@pytest.mark.slow
def test_the_adversarial_pass_on_a_few_cases():
    """scripts/adversarial.py (README, "Reliability"), on a few of its command lines: each is
    refused with one line, no traceback, nothing written."""
    spec = importlib.util.spec_from_file_location("adversarial", ROOT / "scripts/adversarial.py")
    adversarial = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(adversarial)
    few = [c for c in adversarial.CASES if "+foo=1" in c[1] or "output.dir=/proc/x" in c[1]]
    assert len(adversarial.CASES) >= 100 and len(few) == 2
    assert [adversarial.check(case, 120) for case in few] == [None, None]


def test_an_unwritable_output_dir_of_a_single_run_is_refused_before_hydra_starts(
    tmp_path, monkeypatch, capsys
):
    """Item 4: Hydra creates its run folder (runs/single/) before the run checks output.dir;
    the command line is refused before that, and nothing is written in the working directory."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["diffusion-rates", *TINY, "output.dir=/proc/x"])
    monkeypatch.setattr(app, "_hydra_main", lambda: pytest.fail("Hydra started"))
    with pytest.raises(SystemExit) as info:
        app.main()
    assert info.value.code == 2 and list(tmp_path.iterdir()) == []
    assert capsys.readouterr().err.startswith("diffusion-rates: output.dir: a folder")


PINNED = """
import os, sys
os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[: int(sys.argv[1])])
from diffusion_rates import app
sys.argv = ["diffusion-rates", *sys.argv[2:]]
app.main()
"""


@pytest.mark.skipif(
    not hasattr(__import__("os"), "sched_getaffinity")
    or len(__import__("os").sched_getaffinity(0)) < 2,
    reason="needs two CPUs and sched_setaffinity",
)
def test_runs_on_other_thread_counts_are_recorded_and_said(tmp_path, capsys):
    """Item 7: the joblib and basic launchers gave one run id different last bits for
    `gaussian_fit` and `mmd`. The cause is XLA's CPU thread pool, as large as the process's CPU
    affinity (joblib confines each worker to cores // n_jobs CPUs): it splits the sums over
    samples. The records now name the pool, and aggregation says when a sweep mixes pools."""
    config = [
        *TINY,
        "target.d=16",
        "n_samples=65536",
        "metrics=[w2,mmd]",
        "estimator.w2=gaussian_fit",
    ]
    env = {**os.environ, "DIFFUSION_RATES_COMPILE_CACHE": "off"}
    frames = {}
    for cpus in (1, 2):
        out = tmp_path / f"cpus{cpus}"
        argv = [sys.executable, "-c", PINNED, str(cpus), *config, f"output.dir={out}"]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=300, env=env)
        assert done.returncode == 0, done.stderr
        frames[cpus] = pd.read_parquet(out / records.RECORDS).set_index("metric")
    one, two = frames[1], frames[2]
    assert (one.run_id == two.run_id).all()  # the same config and code
    assert one.device.iloc[0].endswith(", 1 thread") and two.device.iloc[0].endswith(", 2 threads")
    # the values agree to rounding (bit for bit only where XLA happens not to split a sum)
    np.testing.assert_allclose(one.value, two.value, rtol=1e-12)
    # a sweep resumed on the other pool: its other job's run says so when aggregated
    app.run(_config(tmp_path / "cpus1/seed1", "seed=1"))
    capsys.readouterr()
    frame = records.collect(tmp_path / "cpus1")
    assert (
        records.devices(frame) == {one.device.iloc[0]: 1, app.device(): 1}
        and app.device() != one.device.iloc[0]
    )
    said = capsys.readouterr().out
    assert "runs on 2 devices" in said and "1 thread;" in said, said
