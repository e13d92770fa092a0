"""diffusion-rates: measured convergence rates of diffusion-model samplers."""

import jax

# Exact laws and estimators need float64 (KL values reach 1e-12 and below); samplers may still
# run in float32 by casting their inputs.
jax.config.update("jax_enable_x64", True)

__version__ = "0.1.0"
