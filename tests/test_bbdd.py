"""The bbdd claim's own pieces: the regime a fitted KL-vs-N exponent picks out, and the
thin-mixture sweep's reliance on the span reduction at every scale."""

from types import SimpleNamespace

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from diffusion_rates import app
from diffusion_rates.metrics import density_ratio
from experiments import bbdd


def _row(slope, low, high, n_points=5, tolerance=0.2):
    return SimpleNamespace(
        slope=slope, ci_low=low, ci_high=high, n_points=n_points, tolerance=tolerance
    )


@pytest.mark.parametrize(
    "row,regime",
    [
        (_row(-1.95, -2.1, -1.8), "1/N²"),
        (_row(-1.0, -1.1, -0.9), "1/N"),
        (_row(-1.5, -1.6, -1.4), "between 1/N and 1/N²"),
        (_row(-2.6, -2.7, -2.5), "faster than 1/N²"),
        (_row(-0.5, -0.6, -0.4), "slower than 1/N"),
        (_row(-1.5, -1.9, -1.1), "undecided"),  # meets both bands
        (_row(-2.0, -2.5, -1.5), "undecided"),  # wider than 4 tolerances: inconclusive
        (_row(-2.0, -2.05, -1.95, n_points=2), "undecided"),
    ],
)
def test_regime_from_the_interval(row, regime):
    assert bbdd._regime(row) == regime


@pytest.mark.parametrize("scale", ["smoke", "default", "paper"])
def test_thin_mixture_runs_on_the_span_with_a_complement(scale):
    """Every job of bbdd_thin is a mixture of N(μ_k, c²I) with one c and K ≤ d, so its
    density ratios run on the span of the means with the complement exact."""
    with initialize_config_dir(app.CONFIG_DIR, version_base=None):
        base = compose(
            "config", overrides=["experiment=bbdd_thin", f"scale={scale}"], return_hydra_config=True
        )
        params = OmegaConf.to_container(base.hydra.sweeper.params, resolve=True)
        for d in str(params["target.d"]).split(","):
            cfg = compose(
                "config", overrides=["experiment=bbdd_thin", f"scale={scale}", f"target.d={d}"]
            )
            assert density_ratio.span_refusal(cfg) is None
            assert cfg.target.K < int(d)
            assert cfg.density_ratio.reduction == "auto"
