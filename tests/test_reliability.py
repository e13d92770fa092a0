"""Issue 15: results never silently lost or stale (README, "Reliability").

Each test reproduces one way a result was lost or stale, in-process on tiny configs.
"""

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir

from diffusion_rates import app, metrics, records

pytestmark = pytest.mark.filterwarnings("ignore:(?s).*validated against ConfigStore schema")
TINY = ["target=gaussian", "target.d=2", "steps=4", "n_samples=64"]


def _config(out, *overrides):
    with initialize_config_dir(app.CONFIG_DIR, version_base=None):
        return compose("config", overrides=[*TINY, *overrides, f"output.dir={out}"])


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
