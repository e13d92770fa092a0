"""`score_error=learned`: a time-conditioned network fitted by denoising score matching.

The network ŝ_θ(y, s) predicts the score of q_s, X_s = a_s X_0 + σ_s Z (a_s = e^{−s},
σ_s² = 1 − e^{−2s}, the OU clock). It is trained on `data_size` exact samples X_0 of the run's
target by denoising score matching (Vincent 2011) with the weight λ(s) = σ_s² that DDPM's simple
loss uses (Ho, Jain, Abbeel 2020; Song et al. 2021),

    L(θ) = E_{s ~ U[s_min, s_max], X_0, Z} ‖σ_s ŝ_θ(a_s X_0 + σ_s Z, s) + Z‖²,

the usual practice, which spends little of the training on small noise, where the score is
largest. So its error is not a synthetic field: it is largest at small s and where the data are
sparse, and its size falls with training (`train_steps`), width, depth and data. The exact score
stays available, so `score_error.measured` gives ε² in both papers' senses on every run.

The network predicts the score itself rather than the noise (ŝ = −ε̂/σ_s): on a grid that runs
down to s ≈ 0 (the `lcw` schedule, δ = 0) a noise prediction divided by σ_s would turn any
error into an unbounded one. Below s_min, the smallest level it was trained on, it is queried at
s_min, as a sampler stopped early would be.

The network: an MLP of `depth` hidden layers of `width` SiLU units on (y, log σ_s and its
Fourier features), LeCun-normal weights; Adam (optax) at a constant learning rate on minibatches
of `batch_size`, in float64, every random number from the seed.

Training is deterministic from (the target's config, the options, the seed) and cached in the
directory `output.networks` (default runs/networks) by the hash of those and of the package's
code: a second run with the same network loads it (`<hash>.npz`). Where it is kept is not part of
a run's id.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from functools import partial
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm import tqdm

from diffusion_rates.process import alpha, sigma2
from diffusion_rates.validation import ConfigError, choice, integer, number

FREQUENCIES = 4  # Fourier features of log σ_s: sin, cos of 2^j log σ_s, j < FREQUENCIES
NOISE_LEVELS = ("uniform", "log_uniform")
CHUNK = 100  # training steps per compiled scan (and per tick of the progress bar)


class Options(NamedTuple):
    width: int  # hidden units per layer
    depth: int  # hidden layers
    train_steps: int  # Adam steps (0: the untrained network)
    data_size: int  # exact samples X_0 ~ q_0 the network sees
    batch_size: int
    learning_rate: float
    s_min: float  # the noise levels trained on, U[s_min, s_max] in the OU clock
    s_max: float
    noise_levels: str  # how s is drawn: uniform or log_uniform


def options_from_config(c) -> Options:
    """The options of `score_error=learned`, each checked in one line naming its key."""
    options = Options(
        width=integer("score_error.width", c.width, 1),
        depth=integer("score_error.depth", c.depth, 1),
        train_steps=integer("score_error.train_steps", c.train_steps, 0),
        data_size=integer("score_error.data_size", c.data_size, 1),
        batch_size=integer("score_error.batch_size", c.batch_size, 1),
        learning_rate=number("score_error.learning_rate", c.learning_rate, 0.0, low_open=True),
        s_min=number("score_error.s_min", c.s_min, 0.0, low_open=True),
        s_max=number("score_error.s_max", c.s_max, 0.0, low_open=True),
        noise_levels=choice("score_error.noise_levels", c.noise_levels, NOISE_LEVELS),
    )
    if options.s_max <= options.s_min:
        raise ConfigError(
            f"score_error.s_max: a number > score_error.s_min = {options.s_min:g} "
            f"(got {options.s_max!r})"
        )
    return options


def _features(y, s):
    """The network's input: y and the noise level as log σ_s with its Fourier features."""
    log_sigma = 0.5 * jnp.log(sigma2(jnp.asarray(s, y.dtype)))
    scales = 2.0 ** jnp.arange(FREQUENCIES, dtype=y.dtype)
    t = jnp.broadcast_to(log_sigma[..., None], (*y.shape[:-1], 1))  # s: a scalar or one per y
    return jnp.concatenate([y, t, jnp.sin(scales * t), jnp.cos(scales * t)], axis=-1)


def init(key, d: int, width: int, depth: int) -> dict:
    """LeCun-normal weights and zero biases: {"w0", "b0", ..., "w<depth>", "b<depth>"}."""
    sizes = [d + 1 + 2 * FREQUENCIES, *[width] * depth, d]
    params = {}
    for j, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        params[f"w{j}"] = jax.random.normal(jax.random.fold_in(key, j), (n_in, n_out)) / np.sqrt(
            n_in
        )
        params[f"b{j}"] = jnp.zeros(n_out)
    return params


def network(weights: dict, y, s):
    """The MLP on the features of (y, s); y of shape (..., d), s a scalar or one per y."""
    depth = len(weights) // 2 - 1
    h = _features(y, s)
    for j in range(depth):
        h = jax.nn.silu(h @ weights[f"w{j}"] + weights[f"b{j}"])
    return h @ weights[f"w{depth}"] + weights[f"b{depth}"]


def score(params: dict, y, s):
    """ŝ(y, s) = ŝ_θ(y, max(s, s_min)); params = {"weights": ..., "s_min": ...}."""
    return network(params["weights"], y, jnp.maximum(jnp.asarray(s, y.dtype), params["s_min"]))


def loss(weights: dict, x0, z, s):
    """The denoising loss on one minibatch: mean of ‖σ_s ŝ(a_s x0 + σ_s z, s) + z‖²."""
    sigma = jnp.sqrt(sigma2(s))[:, None]
    y = alpha(s)[:, None] * x0 + sigma * z
    return jnp.mean(jnp.sum((sigma * network(weights, y, s) + z) ** 2, axis=-1))


def _levels(key, options: Options, dtype):
    """A minibatch's noise levels: s uniform on [s_min, s_max], or log s uniform."""
    u = jax.random.uniform(key, (options.batch_size,), dtype)
    if options.noise_levels == "uniform":
        return options.s_min + u * (options.s_max - options.s_min)
    return options.s_min * (options.s_max / options.s_min) ** u


def fit(data, options: Options, key) -> tuple[dict, float]:
    """The network's weights trained on `data` ((n, d) samples X_0) for options.train_steps
    Adam steps, and the mean loss of its last chunk of steps (NaN for 0 steps)."""
    k_init, k_steps = jax.random.split(key)
    params = init(k_init, data.shape[1], options.width, options.depth)
    optimizer = optax.adam(options.learning_rate)
    state = optimizer.init(params)

    def step(carry, k):
        params, state = carry
        k_i, k_s, k_z = jax.random.split(jax.random.fold_in(k_steps, k), 3)
        x0 = data[jax.random.randint(k_i, (options.batch_size,), 0, len(data))]
        s = _levels(k_s, options, data.dtype)
        z = jax.random.normal(k_z, x0.shape, data.dtype)
        value, grads = jax.value_and_grad(loss)(params, x0, z, s)
        updates, state = optimizer.update(grads, state, params)
        return (optax.apply_updates(params, updates), state), value

    # `length` is static: two compilations at most, CHUNK and the remainder
    @partial(jax.jit, static_argnums=2)
    def chunk(carry, start, length):
        return jax.lax.scan(step, carry, start + jnp.arange(length))

    carry, last, done = (params, state), float("nan"), 0
    with tqdm(total=options.train_steps, desc="training score", unit="step", disable=None) as bar:
        while done < options.train_steps:
            length = min(CHUNK, options.train_steps - done)
            carry, values = chunk(carry, done, length)
            last, done = float(jnp.mean(values)), done + length
            bar.update(length)
    return carry[0], last


def cache_key(target_config: dict, options: Options, seed: int, code_version: str) -> str:
    """The hash a trained network is cached under: the target's config, the training options,
    the seed and the package's code."""
    text = json.dumps(
        {"target": target_config, "options": options._asdict(), "seed": seed},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256((text + code_version).encode()).hexdigest()[:16]


def trained(
    target, target_config: dict, options: Options, seed: int, code_version: str, directory
) -> dict:
    """The network ({"weights", "s_min"}, `score`'s params) for this target, options and seed:
    loaded from directory/<hash>.npz if it was trained before, else trained on
    target.sample(·, data_size, 0) and saved there."""
    path = Path(directory) / f"{cache_key(target_config, options, seed, code_version)}.npz"
    s_min = jnp.float64(options.s_min)
    if path.exists():
        with np.load(path) as saved:
            weights = {k: jnp.asarray(saved[k]) for k in saved.files if k != "loss"}
        return {"weights": weights, "s_min": s_min}
    k_data, k_fit = jax.random.split(jax.random.PRNGKey(seed))
    data = jnp.asarray(target.sample(k_data, options.data_size, jnp.float64(0.0)), jnp.float64)
    weights, last = fit(data, options, k_fit)
    path.parent.mkdir(parents=True, exist_ok=True)
    # written whole or not at all: concurrent jobs training the same network race harmlessly
    handle, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz")
    with os.fdopen(handle, "wb") as f:
        np.savez(f, loss=np.float64(last), **{k: np.asarray(v) for k, v in weights.items()})
    os.replace(tmp, path)
    return {"weights": weights, "s_min": s_min}
