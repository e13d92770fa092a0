"""Speed of the hot paths, measured here rather than in timed tests.

    python scripts/benchmark.py [--repeats 20] [--out results/benchmark.csv]

Score calls: the isotropic mixture score is two matrix products, x μᵀ (n×d by d×K) for the
responsibilities and r μ (n×K by K×d) for the mean; the script times one jitted score call next to
those two products alone, so the ratio says how much the softmax and the rest cost on top.
Estimators: `exact_gaussian` at d = 10⁴, N = 4096 and `density_ratio` paths per second (DDPM on
`lcw_gmm`, d = 1024, K = 64, N = 256: 16 paths per point in all 1024 dimensions, 16 in the
64-dimensional span, and the adaptive default, with the TV floor ÷ value each reaches), each a
whole call from config objects to numbers, first call (with compilation) and warm median
reported apart.
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

from diffusion_rates.metrics import density_ratio, exact, quadrature
from diffusion_rates.process import ou
from diffusion_rates.samplers import SAMPLERS
from diffusion_rates.schedules import make_grid
from diffusion_rates.targets import TARGETS
from diffusion_rates.targets.gaussian import gaussian

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
        case=label,
        n=n,
        d=tgt.d,
        K=tgt.K,
        dtype=str(x.dtype),
        device=str(jax.devices()[0]),
        score_ms=1e3 * t_score,
        matmuls_ms=1e3 * t_bare,
        matmuls_softmax_ms=1e3 * t_softmax,
        ratio_to_matmuls=t_score / t_bare,
    )


def first_and_warm(fn, repeats: int) -> tuple[float, float]:
    start = time.perf_counter()
    fn()
    first = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return first, float(sorted(times)[len(times) // 2])


def estimator_costs(repeats: int) -> list[dict]:
    rows = []
    tgt = gaussian(10_000, "power_law", mean_norm=1.0)
    grid = make_grid(ou(), "bbdd", 10.0, 1e-3, 4096)
    first, warm = first_and_warm(
        lambda: exact.exact_gaussian(SAMPLERS["ei"], tgt, grid, ["kl", "w2"]), repeats
    )
    rows.append(dict(case="exact_gaussian d=10000 N=4096", first_s=first, warm_s=warm))
    for name, kwargs in (("sphere", dict(intrinsic_dim=4)), ("torus", dict(intrinsic_dim=4))):
        manifold = target(name, d=1024, **kwargs)
        grid = make_grid(ou(), "bbdd", 10.0, 1e-3, 512)
        first, warm = first_and_warm(
            lambda m=manifold, g=grid: quadrature.quadrature(SAMPLERS["ei"], m, g, ["kl", "w2"]),
            max(1, repeats // 10),
        )
        case = f"quadrature {name} k=4 D=1024 N=512 (grids n and n/2)"
        rows.append(dict(case=case, first_s=first, warm_s=warm))
    mix = target("lcw_gmm", d=1024, K=64)
    grid = make_grid(ou(), "lcw", None, 0.0, 256, c0=2.0, c1=10.0)
    n = 64
    # 16 paths per point in all d dimensions (the estimator's one fixed round before the span
    # reduction and the adaptive inner sample), in the span's K dimensions, and adaptive
    for label, options in (
        ("full chain, 16 paths", density_ratio.Options(reduction="none", max_paths=16)),
        ("span, 16 paths", density_ratio.Options(reduction="span", max_paths=16)),
        ("span, adaptive (floor <= value/10)", density_ratio.Options()),
    ):
        got = {}

        def call(options=options, got=got):
            got.update(
                density_ratio.estimate(
                    SAMPLERS["ddpm"],
                    mix.score,
                    mix,
                    grid,
                    n,
                    jax.random.PRNGKey(0),
                    options=options,
                )
            )

        first, warm = first_and_warm(call, max(1, repeats // 10))
        paths = got["paths"][0]
        rows.append(
            dict(
                case=f"density_ratio lcw_gmm d=1024 K=64 N=256, {label}",
                first_s=first,
                warm_s=warm,
                paths_per_s=n * paths / warm,
                paths=paths,
                tv_floor_over_value=got["tv"][2] / got["tv"][0],
            )
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path("results/benchmark.csv"))
    args = parser.parse_args()
    rows = [
        score_cost("gmm isotropic", target("gmm", d=256, K=64), 4096, args.repeats),
        score_cost(
            "point_cloud sphere",
            target("point_cloud", d=256, K=10_000, intrinsic_dim=8),
            4096,
            args.repeats,
        ),
    ]
    estimators = pd.DataFrame(estimator_costs(args.repeats))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(args.out, index=False)
    estimators.to_csv(args.out.with_name("benchmark_estimators.csv"), index=False)
    for table in (pd.DataFrame(rows), estimators):
        print(table.to_string(index=False, float_format=lambda v: f"{v:.3g}"))


if __name__ == "__main__":
    main()
