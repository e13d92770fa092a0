"""score_error=learned: a network fitted by denoising score matching (learned.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

import diffusion_rates as dr
from diffusion_rates import learned, metrics, records, score_error
from diffusion_rates.process import alpha, sigma2
from diffusion_rates.validation import ConfigError
from experiments import learned_score

CONFIG = OmegaConf.load("configs/score_error/learned.yaml")


def _options(**changes):
    return learned.options_from_config(OmegaConf.merge(CONFIG, {"width": 16, **changes}))


def _data(n=512):
    return jax.random.normal(jax.random.PRNGKey(3), (n, 2)) * jnp.array([0.5, 1.5]) + 1.0


def _error(weights, s_min=1e-3):
    """E_{q_s}‖ŝ − s‖² averaged over 16 levels, for the Gaussian law of `_data`."""
    mean, var = jnp.array([1.0, 1.0]), jnp.array([0.25, 2.25])
    params = {"weights": weights, "s_min": jnp.float64(s_min)}
    total = 0.0
    for k, s in enumerate(np.geomspace(1e-2, 3.0, 16)):
        m, v = alpha(s) * mean, alpha(s) ** 2 * var + sigma2(s)
        x = m + jnp.sqrt(v) * jax.random.normal(jax.random.PRNGKey(k), (2048, 2))
        total += jnp.mean(jnp.sum((learned.score(params, x, s) + (x - m) / v) ** 2, axis=-1))
    return float(total / 16)


def test_training_is_reproducible_from_the_seed():
    options = _options(train_steps=150)
    first, loss_1 = learned.fit(_data(), options, jax.random.PRNGKey(0))
    again, loss_2 = learned.fit(_data(), options, jax.random.PRNGKey(0))
    other, _ = learned.fit(_data(), options, jax.random.PRNGKey(1))
    assert loss_1 == loss_2
    for k in first:
        np.testing.assert_array_equal(first[k], again[k])
    assert any(not np.array_equal(first[k], other[k]) for k in first)


def test_longer_training_lowers_the_error_against_the_exact_score():
    errors = [
        _error(learned.fit(_data(2048), _options(train_steps=n), jax.random.PRNGKey(0))[0])
        for n in (20, 200, 2000)
    ]
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 0.5 * errors[0]


def test_the_score_is_queried_at_s_min_below_it():
    weights = learned.init(jax.random.PRNGKey(0), 2, 8, 1)
    params = {"weights": weights, "s_min": jnp.float64(1e-2)}
    y = jnp.ones((3, 2))
    np.testing.assert_array_equal(learned.score(params, y, 1e-5), learned.score(params, y, 1e-2))
    assert not np.array_equal(learned.score(params, y, 0.5), learned.score(params, y, 1e-2))


def test_the_trained_network_is_cached_by_its_config(tmp_path):
    target = dr.target("gaussian", d=2).law
    options = _options(train_steps=50, data_size=256)
    config = {"name": "gaussian", "d": 2}
    first = learned.trained(target, config, options, 0, records.code_version(), tmp_path)
    assert len(list(tmp_path.glob("*.npz"))) == 1
    loaded = learned.trained(target, config, options, 0, records.code_version(), tmp_path)
    for k in first["weights"]:
        np.testing.assert_array_equal(first["weights"][k], loaded["weights"][k])
    learned.trained(
        target, config, options._replace(train_steps=60), 0, records.code_version(), tmp_path
    )
    learned.trained(target, {**config, "d": 3}, options, 0, "other code", tmp_path)
    assert len(list(tmp_path.glob("*.npz"))) == 3


def test_a_learned_run_measures_its_error_in_both_senses(tmp_path):
    overrides = (
        "target=gaussian",
        "target.d=2",
        "score_error=learned",
        "score_error.train_steps=100",
        "score_error.width=16",
        f"output.networks={tmp_path}",
        "metrics=[w2]",
        "n_samples=512",
        "steps=16",
    )
    got = dr.run(*overrides)
    assert got["w2"].estimator == "gaussian_fit"
    for m in ("eps_score_sq_weighted", "eps_score_sq_mean"):
        assert got[m].value > 0 and got[m].stderr < 0.1 * got[m].value
    # what is recorded is the network's error against the exact score, from the cached network
    run = dr.build(*overrides)
    assert run.score_error.name == "learned"
    size = min(512, metrics.SCORE_ERROR_SAMPLES)
    again = score_error.measured(
        run.target, run.score_error, run.grid.s, size, metrics._key(run.settings, 6)
    )
    for m, (value, _) in again.items():
        assert value == got[m].value
    assert not score_error.is_exact("learned", 0.0) and not score_error.is_affine("learned", 0.0)


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (["score_error.width=0"], "score_error.width: an integer >= 1"),
        (["score_error.depth=0"], "score_error.depth: an integer >= 1"),
        (["score_error.train_steps=-1"], "score_error.train_steps: an integer >= 0"),
        (["score_error.s_max=1e-4"], "score_error.s_max: a number > score_error.s_min"),
        (["score_error.noise_levels=cosine"], "score_error.noise_levels: one of uniform"),
        (["score_error.eps=0.1"], "score_error.eps: 0 for score_error=learned"),
        (
            ["estimator.kl=exact_gaussian", "metrics=[kl]"],
            "it needs a gaussian target and an affine",
        ),
        (["target=product", "estimator.kl=quadrature", "metrics=[kl]"], "the exact score"),
    ],
)
def test_bad_learned_configs_are_refused_in_one_line(overrides, key):
    with pytest.raises(ConfigError) as info:
        dr.build("score_error=learned", *overrides)
    assert key in str(info.value) and "\n" not in str(info.value)


def test_prepare_puts_each_runs_measured_error_on_its_rows():
    rows = pd.DataFrame(
        dict(
            run_id=["a", "a", "a", "b", "b", "b"],
            experiment=["lcw_learned"] * 3 + ["ptw_bias"] * 3,
            metric=["tv", "eps_score_sq_weighted", "eps_score_sq_mean"] * 2,
            value=[0.1, 0.5, 0.04, 0.2, 0.9, 0.16],
        )
    )
    got = learned_score.prepare(rows).set_index(["run_id", "metric"])
    assert got.loc[("a", "tv"), "eps_sq_weighted"] == 0.5
    assert got.loc[("a", "tv"), "eps_mean"] == pytest.approx(0.2)
    assert got.loc[("b", "tv"), "eps_rms"] == pytest.approx(0.4)
    assert got.loc[("a", "tv"), "bound"] == "lcw" and got.loc[("b", "tv"), "bound"] == "ptw"
