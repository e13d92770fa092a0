"""reference=noised|data: the law the sampler's output is compared with, q_δ or the data q_0."""

import math
import sys

import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir

from diffusion_rates import app, config, metrics
from diffusion_rates.metrics import exact
from diffusion_rates.process import ou
from diffusion_rates.records import COLUMNS
from diffusion_rates.samplers import SAMPLERS
from diffusion_rates.schedules import make_grid
from diffusion_rates.targets.gaussian import Gaussian, gaussian


def composed(*overrides):
    with initialize_config_dir(app.CONFIG_DIR, version_base=None):
        return compose("config", overrides=[*overrides, "output.dir=unused"])


def measured(cfg) -> dict:
    config.validate(cfg)
    return metrics.measure(config.build(cfg))


def w2_data_by_hand(sampler, grid, lam, mean):
    """W2(output, q_0) of a one-step sampler from N(0, I) on N(mean, diag λ), in plain floats:
    per coordinate m' = (A - B/v_s) m + B a_s μ / v_s, v' = (A - B/v_s)² v + C²,
    v_s = a_s² λ + σ_s², a_s = e^{-s}, σ_s² = 1 - e^{-2s}; then
    W2² = Σ (m - μ)² + (√v - √λ)²."""
    A, B, C = (np.asarray(c, dtype=float).tolist() for c in sampler.coefficients(grid.steps()))
    total = 0.0
    for lam_i, mu_i in zip(lam, mean, strict=True):
        m, v = 0.0, 1.0
        for k, s in enumerate(grid.s[:-1].tolist()):
            a = math.exp(-s)
            v_s = a * a * lam_i - math.expm1(-2.0 * s)
            gain = A[k] - B[k] / v_s
            m = gain * m + B[k] * a * mu_i / v_s
            v = gain * gain * v + C[k] * C[k]
        total += (m - mu_i) ** 2 + (math.sqrt(v) - math.sqrt(lam_i)) ** 2
    return math.sqrt(total)


@pytest.mark.parametrize("mean_norm", [0.0, 1.0])
@pytest.mark.parametrize("sampler", ["ei", "ddpm"])
def test_exact_w2_against_the_data_is_the_recursion_by_hand(sampler, mean_norm):
    cfg = composed(
        f"sampler={sampler}",
        "target=gaussian",
        "target.d=5",
        "target.spectrum=power_law",
        f"target.mean_norm={mean_norm}",
        "steps=32",
        "reference=data",
        "metrics=[w2]",
    )
    run = config.build(cfg)
    estimator, value = measured(cfg)["w2"]
    lam = np.asarray(run.target.eigvals).tolist()
    mean = np.asarray(run.target.mean).tolist()
    expected = w2_data_by_hand(SAMPLERS[sampler], run.grid, lam, mean)
    assert estimator == "exact_gaussian" and value.floor < 1e-10 * expected
    assert value.value == pytest.approx(expected, rel=1e-10)


def test_with_no_discretisation_error_the_data_is_the_early_stopping_bias_away():
    """init = q_T and N = 2^16 on the bbdd grid: the output is q_δ up to W2 ~ 1/N, so W2
    against the data is W2(q_0, q_δ) = √Σ(√(a_δ²λ + σ_δ²) - √λ)² (centred) up to W2 against q_δ
    (triangle inequality), and far from 0."""
    target = gaussian(5, "power_law")
    delta = 1e-2
    grid = make_grid(ou(), "bbdd", 10.0, delta, 2**16)
    lam = np.asarray(target.eigvals)
    noised_sd = np.sqrt(np.exp(-2 * delta) * lam - np.expm1(-2 * delta))
    bias = np.sqrt(np.sum((noised_sd - np.sqrt(lam)) ** 2))
    for name in ("ei", "ddpm"):
        sampler = SAMPLERS[name]
        noised = exact.exact_gaussian(sampler, target, grid, ["w2"], "target")["w2"][0]
        data = exact.exact_gaussian(sampler, target, grid, ["w2"], "target", at=0.0)["w2"][0]
        assert noised < 0.02 * bias and abs(data - bias) <= noised * (1 + 1e-9)


def test_kl_against_a_singular_data_law_is_inf():
    """One eigenvalue 0: the data is a point mass in that direction and the output is not."""
    target = Gaussian(jnp.zeros(3), jnp.array([1.0, 0.5, 0.0]))
    grid = make_grid(ou(), "uniform", 10.0, 1e-3, 64)
    names = ["kl", "kl_reverse", "w2", "hellinger"]
    got = exact.exact_gaussian(SAMPLERS["ei"], target, grid, names, at=0.0)
    assert got["kl"][0] == np.inf and got["kl_reverse"][0] == np.inf
    assert np.isfinite(got["w2"][0]) and got["hellinger"][0] == pytest.approx(1.0)
    assert all(np.isfinite(got[m][2]) for m in names)  # the floors stay rounding-level


def test_gaussian_fit_against_the_data_agrees_with_exact():
    """δ = 0.5 makes q_δ and q_0 far apart (W2 ≈ 0.45): the sample-based estimate with
    reference=data finds the exact W2 against the data, not the one against q_δ."""
    common = [
        "target.d=2",
        "target.spectrum=power_law",
        "target.mean_norm=1.0",
        "init=target",
        "delta=0.5",
        "steps=64",
        "n_samples=4096",
        "metrics=[w2]",
    ]
    exact_data = measured(composed(*common, "reference=data"))["w2"][1].value
    exact_noised = measured(composed(*common))["w2"][1].value
    fitted = composed(*common, "reference=data", "estimator.w2=gaussian_fit")
    estimator, fit = measured(fitted)["w2"]
    assert estimator == "gaussian_fit"
    tolerance = 3 * fit.stderr + fit.floor
    assert abs(fit.value - exact_data) < tolerance, (fit, exact_data)
    assert abs(fit.value - exact_noised) > 2 * tolerance, (fit, exact_noised)


def test_quadrature_against_the_data_is_exact_gaussian():
    """A one-component product is a Gaussian: quadrature's W2 and KL against the data q_0 agree
    with exact_gaussian's (itself checked against the recursion by hand) to 1e-6 relative; the
    selection keeps quadrature for it."""
    product = ["target=product", "target.d=4", "target.intrinsic_dim=2", "target.K=1"]
    cfg = composed(*product, "target.means=[0.7]", "target.stds=[0.5]", "metrics=[w2]")
    data = composed(
        *product, "target.means=[0.7]", "target.stds=[0.5]", "metrics=[w2]", "reference=data"
    )
    run = config.build(data)
    assert metrics.select("w2", run.settings, run.grid) == "quadrature"
    got = metrics.measure(run)["w2"][1].value
    gaussian_target = Gaussian(jnp.array([0.7, 0.7, 0.0, 0.0]), jnp.array([0.25, 0.25, 0.0, 0.0]))
    want = exact.exact_gaussian(run.sampler, gaussian_target, run.grid, ["w2"], at=0.0)["w2"][0]
    assert got == pytest.approx(want, rel=1e-6)
    assert got != pytest.approx(metrics.measure(config.build(cfg))["w2"][1].value, rel=1e-3)


REFUSED = [
    (["reference=foo"], "one of noised, data"),
    (["reference=data", "metrics=[strong]"], "pathwise"),
    (["reference=data", "metrics=[strong]", "estimator.strong=strong"], "pathwise"),
    (
        ["reference=data", "target=gmm", "metrics=[kl]", "estimator.kl=density_ratio"],
        "density_ratio (it serves noised)",
    ),
    (["reference=data", "target=gmm", "metrics=[kl]"], "density_ratio (it serves noised)"),
]


@pytest.mark.parametrize("argv,says", REFUSED, ids=[" ".join(a) for a, _ in REFUSED])
def test_refusal_is_one_line_naming_reference_and_writes_nothing(
    argv, says, tmp_path, capsys, monkeypatch
):
    out = tmp_path / "out"
    monkeypatch.setattr(sys, "argv", ["diffusion-rates", *argv, f"output.dir={out}"])
    monkeypatch.setattr(app, "_launches_elsewhere", lambda argv: False)
    with pytest.raises(SystemExit) as info:
        app.main()
    message = capsys.readouterr().err
    assert info.value.code == 2 and message.count("\n") == 1, message
    assert message.startswith("diffusion-rates: reference: ") and says in message, message
    assert not out.exists()


def test_records_say_their_reference(tmp_path):
    with initialize_config_dir(app.CONFIG_DIR, version_base=None):
        cfg = compose("config", ["target.d=3", "reference=data", f"output.dir={tmp_path}"])
    frame = pd.read_parquet(app.run(cfg))
    assert list(frame.columns) == COLUMNS and set(frame.reference) == {"data"}
    assert set(frame.status) == {"ok"}
