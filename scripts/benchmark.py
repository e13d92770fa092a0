"""Speed of the hot paths, measured here rather than in timed tests.

    python scripts/benchmark.py [--repeats 20] [--out results/benchmark.csv]

Score calls: the isotropic mixture score is two matrix products, x μᵀ (n×d by d×K) for the
responsibilities and r μ (n×K by K×d) for the mean; the script times one jitted score call next to
those two products alone, so the ratio says how much the softmax and the rest cost on top.
Times are medians over `repeats` calls after one warm-up call (compilation excluded).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import pandas as pd
from omegaconf import OmegaConf

from diffusion_rates.targets import TARGETS

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "target"


def target(name: str, **overrides):
    cfg = OmegaConf.merge(OmegaConf.load(CONFIGS / f"{name}.yaml"), overrides)
    return TARGETS[name].build(cfg)


def median_seconds(fn, *args, repeats: int) -> float:
    jax.block_until_ready(fn(*args))  # compile and warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return float(sorted(times)[len(times) // 2])


def score_cost(label: str, tgt, n: int, repeats: int) -> dict:
    x = tgt.sample(jax.random.PRNGKey(0), n, 0.3)
    s = jnp.asarray(0.3)
    means = tgt.means
    score = jax.jit(tgt.score)
    products = jax.jit(lambda x, m: jax.nn.softmax(x @ m.T, axis=1) @ m)
    bare = jax.jit(lambda x, m: (x @ m.T) @ m)
    t_score = median_seconds(score, x, s, repeats=repeats)
    t_bare = median_seconds(bare, x, means, repeats=repeats)
    t_softmax = median_seconds(products, x, means, repeats=repeats)
    return dict(
        case=label, n=n, d=tgt.d, K=tgt.K, dtype=str(x.dtype), device=str(jax.devices()[0]),
        score_ms=1e3 * t_score, matmuls_ms=1e3 * t_bare, matmuls_softmax_ms=1e3 * t_softmax,
        ratio_to_matmuls=t_score / t_bare,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path("results/benchmark.csv"))
    args = parser.parse_args()
    rows = [
        score_cost("gmm isotropic", target("gmm", d=256, K=64), 4096, args.repeats),
        score_cost("point_cloud sphere", target("point_cloud", d=256, K=10_000,
                                                intrinsic_dim=8), 4096, args.repeats),
    ]
    table = pd.DataFrame(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3g}"))


if __name__ == "__main__":
    main()
