"""The LCW mechanism check: `GMM.hessian_trace` against autodiff and against the identity-covariance
closed form, and `experiments.lcw_mechanism` on tiny sizes."""

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from diffusion_rates.process import alpha
from diffusion_rates.targets.gmm import gmm
from diffusion_rates.targets.lcw_gmm import lcw_gmm
from experiments import lcw_mechanism

jax.config.update("jax_enable_x64", True)

TINY = dict(K_values=(2,), d_values=(4,), steps=64, n=64, mean_norm=3.0, seed=0)


# unequal weights and scales: the terms −d Σ r_k/v_k and the |x|²-dependence of Var_r(g) only
# show when the v_k differ
MIXTURE = gmm(jax.random.key(3), 5, 3, [0.2, 0.3, 0.5], "isotropic", [0.4, 0.9, 1.5], 2.0)


@jax.jit
def autodiff_traces(x, s):
    """tr of jacfwd(score) and of hessian(log_prob) at each row of x: one compile for all s."""
    jac = jax.vmap(jax.jacfwd(lambda y: MIXTURE.score(y[None], s)[0]))(x)
    hess = jax.vmap(jax.hessian(lambda y: MIXTURE.log_prob(y[None], s)[0]))(x)
    return jnp.trace(jac, axis1=1, axis2=2), jnp.trace(hess, axis1=1, axis2=2)


@pytest.mark.parametrize("s", [0.01, 0.5, 2.0])
def test_hessian_trace_matches_autodiff(s):
    x = MIXTURE.sample(jax.random.key(4), 16, s)
    of_score, of_log_prob = autodiff_traces(x, s)
    got = MIXTURE.hessian_trace(x, s)
    np.testing.assert_allclose(got, of_score, rtol=1e-9)
    np.testing.assert_allclose(got, of_log_prob, rtol=1e-9)


def test_hessian_trace_refuses_non_isotropic():
    target = gmm(jax.random.key(5), 3, 2, covariance="diagonal")
    with pytest.raises(ValueError, match="isotropic"):
        target.hessian_trace(jnp.zeros((1, 3)), 0.5)


@pytest.mark.parametrize("s", [0.0, 0.05, 0.7, 3.0])
def test_identity_covariances_give_the_variance_of_the_means(s):
    # v_k = 1: tr(I + ∇² log q_s) = a_s² (Σ r_k |μ_k|² − |Σ r_k μ_k|²), with r computed here
    # from the residuals x − a_s μ_k themselves, not from the class's expansion
    target = lcw_gmm(jax.random.key(6), 7, 4, 3.0)
    x = target.sample(jax.random.key(7), 32, s)
    a = alpha(s)
    residuals = x[:, None, :] - a * target.means
    r = jax.nn.softmax(jnp.log(target.weights) - 0.5 * jnp.sum(residuals**2, axis=-1), axis=1)
    mean_mu = r @ target.means
    expected = a**2 * (r @ jnp.sum(target.means**2, axis=1) - jnp.sum(mean_mu**2, axis=1))
    np.testing.assert_allclose(
        target.d + target.hessian_trace(x, s), expected, rtol=1e-9, atol=1e-12
    )


def test_trace_statistics_tiny():
    stats = lcw_mechanism.trace_statistics(**TINY)
    again = lcw_mechanism.trace_statistics(**TINY)
    pd.testing.assert_frame_equal(stats, again)
    values = stats[["mean", "q90", "q99", "max"]].to_numpy()
    assert np.isfinite(values).all()
    assert (stats.q99 >= stats["mean"]).all() and (stats["max"] >= stats.q99).all()
    assert stats["max"].max() <= TINY["mean_norm"] ** 2 + 1e-9
    # every 8th of the 65 grid times, from s_0 = (c0/2) log N = log 64 down to s = 0
    assert len(stats) == 9
    np.testing.assert_allclose(stats.s.iloc[0], np.log(64.0), rtol=1e-12)
    assert stats.s.iloc[-1] == 0.0
    assert stats["max"].max() > 0.1  # not identically zero: the means are resolved at mid s


def test_section_writes_files_and_reports_the_data(tmp_path):
    small = dict(K_values=(2, 4), d_values=(4, 8), steps=64, n=64)
    lines = lcw_mechanism.section(tmp_path / "lcw", **small)
    csv = tmp_path / "lcw" / "mechanism.csv"
    assert csv.exists() and (tmp_path / "lcw" / "mechanism.png").exists()
    stats = pd.read_csv(csv)
    assert sorted(set(zip(stats.K, stats.d, strict=True))) == [(2, 4), (2, 8), (4, 4), (4, 8)]
    peak = stats[(stats.K == 4) & (stats.d == 8)].q99.max()
    rows = [line for line in lines if line.startswith("| 4 | 8 |")]
    assert len(rows) == 1 and f"| {peak:.3g} |" in rows[0]
    assert any(line.startswith("**Reading.**") for line in lines)


def test_section_refuses_a_trace_above_the_bound(tmp_path, monkeypatch):
    stats = lcw_mechanism.trace_statistics(**TINY)
    inflated = stats.assign(max=stats["max"] + TINY["mean_norm"] ** 2)
    monkeypatch.setattr(lcw_mechanism, "trace_statistics", lambda *args: inflated)
    with pytest.raises(RuntimeError, match="bound"):
        lcw_mechanism.section(tmp_path, K_values=(2,), d_values=(4,), steps=64, n=64)
    assert not (tmp_path / "mechanism.csv").exists()
