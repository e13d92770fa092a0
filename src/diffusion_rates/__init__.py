"""diffusion-rates: measured convergence rates of diffusion-model samplers.

The Python API (`diffusion_rates.api`, also here): `target`, `grid`, `sample`, `measure`, `run`,
`build`, and the `Target`, `Grid` and `Metric` they return.
"""

import jax

# Exact laws and estimators need float64 (KL values reach 1e-12 and below); samplers may still
# run in float32 by casting their inputs.
jax.config.update("jax_enable_x64", True)

__version__ = "0.1.0"

__all__ = ["Grid", "Metric", "Target", "build", "grid", "measure", "run", "sample", "target"]


def __getattr__(name: str):
    # The API imports Hydra and every estimator (seconds): only when asked for, not with each
    # of the package's modules.
    if name in __all__:
        from diffusion_rates import api

        return getattr(api, name)
    raise AttributeError(f"module 'diffusion_rates' has no attribute {name!r}")
