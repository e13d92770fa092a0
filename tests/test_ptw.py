"""The ptw claim's own check: the strong log-concavity its bound assumes, and the warning."""

import jax
import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir

import diffusion_rates  # noqa: F401  (float64)
from diffusion_rates import app
from experiments import ptw


def test_curvature_of_a_gaussian_is_its_inverse_variances():
    """q_δ = N(a m, a² Σ + σ² I): −∇² log q_δ = (a² Σ + σ² I)^{−1} everywhere, so the range is
    that of 1/(a² λ_i + σ²), by hand."""
    target, delta = ptw._target("gaussian_aniso", 3), 0.01
    variances = np.exp(-2 * delta) * np.asarray(target.eigvals) - np.expm1(-2 * delta)
    low, high = ptw.curvature(target, delta, jax.random.PRNGKey(0))
    assert low == pytest.approx(1 / variances.max(), rel=1e-9)
    assert high == pytest.approx(1 / variances.min(), rel=1e-9)


@pytest.mark.slow
def test_a_bimodal_target_is_flagged():
    """The default product (½ N(−1, 0.3²) + ½ N(1, 0.3²) per coordinate) is not log-concave
    between its modes: the report warns, it does not refuse."""
    records = pd.DataFrame(
        {"target_config": ["product", "product_close"], "d": [10, 2], "delta": [0.01, 0.01]}
    )
    text = ptw._log_concavity(records)
    assert "**Warning**: product not log-concave" in text
    assert "product_close" not in text.split("**Warning**")[1]


def test_every_target_file_names_itself():
    """Records tell two files of one family apart by target.config_name (column target_config):
    each file of configs/target/ must set it to its own name, presets included."""
    names = app._options("target")
    with initialize_config_dir(app.CONFIG_DIR, version_base=None):
        got = {n: compose("config", overrides=[f"target={n}"]).target.config_name for n in names}
    assert got == {n: n for n in names}
