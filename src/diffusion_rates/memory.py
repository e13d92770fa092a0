"""A cheap lower bound on a run's memory, checked before any compute.

A size that cannot fit (K = 10⁷ components against 4096 points, 10⁹ samples) used to compute for
tens of seconds before XLA ran out of memory, and every rerun of the sweep retried it. The
estimate counts only the arrays a run cannot do without (float64, 8 bytes each), so it refuses
only what cannot fit in the machine's physical memory, never a run that merely might not:

- the sampler's output, its noise and the two target samples: 4 × n_samples × d, when a
  sample-based or Monte Carlo estimator is asked for (the exact ones draw no samples);
- a mixture's score: n_samples × K responsibilities, and the K × d means.

$DIFFUSION_RATES_MEMORY_GB replaces the machine's memory (a bigger node than the one that checks
the command line, or a run that is known to stream).
"""

from __future__ import annotations

import os

from omegaconf import OmegaConf

from diffusion_rates.validation import ConfigError, positive_env

ENV = "DIFFUSION_RATES_MEMORY_GB"
EXACT = ("exact_gaussian", "quadrature")  # estimators that draw no n_samples × d arrays
FLOAT = 8


def available_gb() -> float:
    """The machine's physical memory in GB, or $DIFFUSION_RATES_MEMORY_GB."""
    declared = positive_env(ENV, "GB")
    return declared or os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 1e9


def terms(cfg, estimators) -> dict[str, tuple[float, str]]:
    """{the key that sets it: (GB, what)} for the run's largest arrays."""
    n, d, K = cfg.n_samples, cfg.target.get("d") or 1, cfg.target.get("K") or 1
    sampled = any(e not in EXACT for e in estimators)
    return {
        "n_samples": (
            4 * n * d * FLOAT / 1e9 if sampled else 0.0,
            "4 arrays of n_samples × d: the output, its noise, two target samples",
        ),
        "target.K": (
            K * ((n if sampled else 0) + d) * FLOAT / 1e9,
            "the K × d means and n_samples × K responsibilities of the score",
        ),
    }


def check(cfg, estimators) -> None:
    """Refuse, naming the key and the estimate, a run whose arrays exceed the memory."""
    have = available_gb()
    key, (need, what) = max(terms(cfg, estimators).items(), key=lambda kv: kv[1][0])
    if need > have:
        raise ConfigError(
            f"{key}: the run needs at least {need:.3g} GB ({what}), more than the "
            f"{have:.3g} GB of this machine (got {OmegaConf.select(cfg, key)!r}; {ENV}=<GB> for a "
            "bigger one)"
        )
