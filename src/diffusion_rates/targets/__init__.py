"""Targets with closed-form noised laws, one module per family.

Every target gives, at any OU time s and batched over x of shape (n, d): exact samples of X_s
(`sample(key, n, s)`), `log_prob(x, s)`, `score(x, s)` = ∇ log q_s(x) and `posterior_mean(x, s)`
= E[X_0 | X_s = x], and records `d`, `intrinsic_dim`, `K` and its `normalisation`.
`TARGETS[name]` pairs the config validator of a family with its builder.
"""

from typing import NamedTuple

from diffusion_rates.targets import (
    gaussian,
    gmm,
    lcw_gmm,
    point_cloud,
    product,
    sphere,
    subspace,
    torus,
)


class TargetFamily(NamedTuple):
    validate: callable  # target config -> None, raises ConfigError
    build: callable  # target config -> target


TARGETS = {
    "gaussian": TargetFamily(gaussian.validate_config, gaussian.from_config),
    "gmm": TargetFamily(gmm.validate_config, gmm.from_config),
    "lcw_gmm": TargetFamily(lcw_gmm.validate_config, lcw_gmm.from_config),
    "point_cloud": TargetFamily(point_cloud.validate_config, point_cloud.from_config),
    "subspace": TargetFamily(subspace.validate_config, subspace.from_config),
    "product": TargetFamily(product.validate_config, product.from_config),
    "sphere": TargetFamily(sphere.validate_config, sphere.from_config),
    "torus": TargetFamily(torus.validate_config, torus.from_config),
}
