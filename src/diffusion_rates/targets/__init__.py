"""Targets with closed-form noised laws, one module per family.

Every target gives, at any OU time s and batched over x of shape (n, d): exact samples of X_s
(`sample(key, n, s)`), `log_prob(x, s)`, `score(x, s)` = ∇ log q_s(x) and `posterior_mean(x, s)`
= E[X_0 | X_s = x], and records `d`, `intrinsic_dim`, `K` and its `normalisation`.
`TARGETS[name]` pairs the config validator of a family with its builder.
"""

from typing import NamedTuple

from diffusion_rates.targets import gaussian


class TargetFamily(NamedTuple):
    validate: callable  # target config -> None, raises ConfigError
    build: callable  # target config -> target


TARGETS = {"gaussian": TargetFamily(gaussian.validate_config, gaussian.from_config)}
