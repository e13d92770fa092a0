"""Speed of the hot paths, measured here rather than in timed tests.

    python scripts/benchmark.py [--repeats 20] [--out results/benchmark.csv]

Sampling loops (`benchmark_sampling.csv`): particle-steps per second of `sample` with `em`, `ei`,
`ddpm` and `sra1` on an isotropic mixture (n = 4096 particles, d = 256, K = 64, N = 64 steps),
in float64 and float32, next to loops of the same shapes that do one part of a step alone: the
score's two matrix products (GEMM only: y ← y + c (y μᵀ) μ), the normals alone (RNG only: the
suite's counter-based normals, and JAX's threefry), `ei` with threefry normals (the sampler as it
was), and a plain NumPy loop of the same `ei` step (NumPy's generator); diffrax's Euler on the
same reverse SDE as an optional peer, when installed (`pip install -e '.[bench]'`), with a
Brownian path of the same normals and with its VirtualBrownianTree. Medians of `repeats` rounds
in which every loop runs once, interleaved so that a change of the machine's load hits all.
Score calls (`benchmark.csv`): the isotropic mixture score is two matrix products, x μᵀ (n×d by
d×K) for the responsibilities and r μ (n×K by K×d) for the mean; one jitted score call next to
those two products alone, so the ratio says how much the softmax and the rest cost on top.
Estimators (`benchmark_estimators.csv`): `exact_gaussian` at d = 10⁴, N = 4096, quadrature, and
`density_ratio` paths per second (DDPM on `lcw_gmm`, d = 1024, K = 64, N = 256: 16 paths per
point in all 1024 dimensions, in float64 and float32, 16 in the 64-dimensional span, and the
adaptive default, with the TV value and floor each reaches), each a whole call from config
objects to numbers, first call (with compilation) and warm median reported apart.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from omegaconf import OmegaConf

from diffusion_rates import noise
from diffusion_rates.metrics import density_ratio, exact, quadrature
from diffusion_rates.precision import with_dtype
from diffusion_rates.process import ou
from diffusion_rates.samplers import SAMPLERS, sample
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


SAMPLING_SHAPE = dict(n=4096, d=256, K=64, steps=64)


def threefry_normal(key, shape, dtype, first=0):
    """JAX's default normals (threefry2x32, then erfinv), as `sample` drew them before."""
    return jax.random.normal(key, shape, dtype)


def numpy_ei(means, grid, y0, seed: int):
    """The `ei` step on an isotropic mixture `means` (a GMM) in plain NumPy, with NumPy's
    generator for the normals: the slow plain reference."""
    rng = np.random.default_rng(seed)
    y, dtype = np.array(y0), y0.dtype
    lam = np.asarray(means.eigvals, dtype)
    mu = np.asarray(means.means, dtype)
    sq_mu = (mu**2).sum(1)
    for s, s_next in zip(grid.s[:-1], grid.s[1:], strict=True):
        g = s - s_next
        a, var = np.exp(-s), -np.expm1(-2 * s)
        v = a**2 * lam + var
        logits = -0.5 * ((y**2).sum(1)[:, None] - 2 * a * y @ mu.T + a**2 * sq_mu) / v
        logits -= 0.5 * y.shape[1] * np.log(v)
        r = np.exp(logits - logits.max(1, keepdims=True))
        r /= r.sum(1, keepdims=True)
        score = a * (r / v) @ mu - y * (r @ (1 / v))[:, None]
        z = rng.standard_normal(y.shape, dtype=dtype)
        y = np.exp(g) * y + 2 * np.expm1(g) * score + np.sqrt(np.expm1(2 * g)) * z
    return y


def diffrax_loops(score, grid, y0, key) -> dict:
    """diffrax's Euler on dY = (Y + 2ŝ(Y, T − τ)) dτ + √2 dW (OU clock), on the run's grid:
    with a Brownian path of the suite's normals (increments summed in advance) and with diffrax's
    own VirtualBrownianTree. Empty when diffrax is not installed, and in float32 (its solver
    promoted a float32 state to float64 here)."""
    if y0.dtype != jnp.float64:
        return {}
    try:
        import diffrax
        import lineax
    except ImportError:
        return {}
    T, dtype = float(grid.s[0]), y0.dtype
    ts = jnp.asarray(T - grid.s, dtype)  # reverse time τ
    tol = float(np.min(np.diff(T - grid.s))) / 2  # the tree resolves every step
    n_steps = len(grid.s) - 1

    def drift(t, y, args):
        return y + 2.0 * score(y, jnp.asarray(T, dtype) - t)

    def solve(brownian, y0):
        terms = diffrax.MultiTerm(
            diffrax.ODETerm(drift),
            diffrax.ControlTerm(
                lambda t, y, a: lineax.DiagonalLinearOperator(jnp.full(y.shape, 2.0**0.5, dtype)),
                brownian,
            ),
        )
        return diffrax.diffeqsolve(
            terms,
            diffrax.Euler(),
            ts[0],
            ts[-1],
            None,
            y0,
            stepsize_controller=diffrax.StepTo(ts),
            saveat=diffrax.SaveAt(t1=True),
            max_steps=n_steps,
        ).ys[0]

    class PathOfNormals(diffrax.AbstractBrownianPath):
        """W at the grid's times from the suite's normals: W(τ_k) = Σ_{j<k} √(τ_{j+1}−τ_j) z_j."""

        increments: jax.Array
        t0: float
        t1: float
        levy_area = diffrax.BrownianIncrement

        @property
        def shape(self):
            return jax.ShapeDtypeStruct(self.increments.shape[1:], self.increments.dtype)

        def evaluate(self, t0, t1=None, left=True, use_levy=False):
            k0 = jnp.searchsorted(ts, t0, side="left")
            k1 = jnp.searchsorted(ts, t1, side="left")
            return self.increments[k1] - self.increments[k0]

    def with_normals(y0, key):
        z = jax.vmap(lambda k: noise.normal(jax.random.fold_in(key, k), y0.shape, dtype))(
            jnp.arange(n_steps)
        )
        dW = jnp.sqrt(jnp.diff(ts))[:, None, None] * z
        W = jnp.concatenate([jnp.zeros_like(dW[:1]), dW.cumsum(0)])
        return solve(PathOfNormals(W, ts[0], ts[-1]), y0)

    def with_tree(y0, key):
        tree = diffrax.VirtualBrownianTree(
            0.0, T - float(grid.s[-1]), tol=tol, shape=y0.shape, key=key
        )
        return solve(tree, y0)

    return {
        "diffrax Euler, path of the suite's normals": (jax.jit(with_normals), (y0, key)),
        "diffrax Euler, VirtualBrownianTree": (jax.jit(with_tree), (y0, key)),
    }


def sampling_loops(dtype, grid, key) -> dict:
    """{label: (function, args)} of the loops the module docstring lists, in `dtype`."""
    n, d, K, steps = (SAMPLING_SHAPE[k] for k in ("n", "d", "K", "steps"))
    tgt = with_dtype(target("gmm", d=d, K=K), dtype)
    y0 = noise.normal(key, (n, d), dtype)
    c = jnp.asarray(1e-4, dtype)

    def gemm_only(y0, key):
        def body(y, k):
            return y + c * ((y @ tgt.means.T) @ tgt.means), None

        return jax.lax.scan(body, y0, jnp.arange(steps))[0]

    def rng_only(normal):
        def loop(y0, key):
            def body(y, k):
                return y + normal(jax.random.fold_in(key, k), y.shape, y.dtype), None

            return jax.lax.scan(body, y0, jnp.arange(steps))[0]

        return jax.jit(loop)

    def sampler(name, normal=noise.normal):
        return jax.jit(
            lambda y0, key: sample(SAMPLERS[name], tgt.score, grid, y0, key, normal=normal)
        )

    loops = {f"sample {name}": (sampler(name), (y0, key)) for name in ("em", "ei", "ddpm", "sra1")}
    loops["sample ei, threefry normals"] = (sampler("ei", threefry_normal), (y0, key))
    loops["GEMM only (the score's two products)"] = (jax.jit(gemm_only), (y0, key))
    loops["RNG only, counter-based normals"] = (rng_only(noise.normal), (y0, key))
    loops["RNG only, threefry normals"] = (rng_only(threefry_normal), (y0, key))
    loops.update(diffrax_loops(tgt.score, grid, y0, key))
    loops["NumPy ei (plain reference)"] = (
        lambda y0, seed: numpy_ei(tgt, grid, y0, seed),
        (np.asarray(y0), 0),
    )
    return loops


def sampling_costs(repeats: int) -> list[dict]:
    """Particle-steps per second of the sampling loops (module docstring), float64 and float32."""
    n, d, K, steps = (SAMPLING_SHAPE[k] for k in ("n", "d", "K", "steps"))
    key = jax.random.PRNGKey(0)
    grid = make_grid(ou(), "uniform", 5.0, 1e-2, steps)
    rows = []
    for dtype in (jnp.float64, jnp.float32):
        loops = sampling_loops(dtype, grid, key)
        for fn, args in loops.values():
            jax.block_until_ready(fn(*args))  # compile and warm up
        times = {label: [] for label in loops}
        for _ in range(repeats):
            for label, (fn, args) in loops.items():
                start = time.perf_counter()
                jax.block_until_ready(fn(*args))
                times[label].append(time.perf_counter() - start)
        gemm = float(np.median(times["GEMM only (the score's two products)"]))
        for label, t in times.items():
            t = float(np.median(t))
            rows.append(
                dict(
                    loop=label,
                    dtype=jnp.dtype(dtype).name,
                    n=n,
                    d=d,
                    K=K,
                    steps=steps,
                    seconds=t,
                    particle_steps_per_s=n * steps / t,
                    vs_gemm_only=gemm / t,
                    device=str(jax.devices()[0]),
                )
            )
    return rows


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
    full = density_ratio.Options(reduction="none", max_paths=16)
    for label, options, dtype in (
        ("full chain, 16 paths, float64", full, jnp.float64),
        ("full chain, 16 paths, float32", full, jnp.float32),
        ("span, 16 paths", density_ratio.Options(reduction="span", max_paths=16), jnp.float64),
        ("span, adaptive (floor <= value/10)", density_ratio.Options(), jnp.float64),
    ):
        got = {}

        def call(options=options, dtype=dtype, got=got):
            got.update(
                density_ratio.estimate(
                    SAMPLERS["ddpm"],
                    with_dtype(mix, dtype).score,
                    mix,
                    grid,
                    n,
                    jax.random.PRNGKey(0),
                    options=options,
                    dtype=dtype,
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
                tv=got["tv"][0],
                tv_floor=got["tv"][2],
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
    sampling = pd.DataFrame(sampling_costs(max(5, args.repeats // 4)))
    estimators = pd.DataFrame(estimator_costs(args.repeats))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(args.out, index=False)
    sampling.to_csv(args.out.with_name("benchmark_sampling.csv"), index=False)
    estimators.to_csv(args.out.with_name("benchmark_estimators.csv"), index=False)
    for table in (sampling, pd.DataFrame(rows), estimators):
        print(table.to_string(index=False, float_format=lambda v: f"{v:.3g}"))


if __name__ == "__main__":
    main()
