"""Exact W2 of the sampler's output against q_δ and against the data, on an anisotropic Gaussian.

    python scripts/against_data.py [--d 64] [--eps 1e-3] [--init standard]
        [--samplers ei ddpm em ddim] [--steps 16 64 256 1024 4096 16384 65536]
        [--out results/against_data.csv]

After the setting of Pierret & Galerne (ICML 2025), who report the exact W2 against the data
for a Gaussian fitted to CIFAR-10, at a smaller d and with a synthetic spectrum:
target=gaussian_aniso (power-law spectrum of mean 1, ‖m‖ = 1) at d = 64, process=vp_linear
(β from 0.05 to 10 on t ∈ [0, 1]; T = B(1), its whole time axis), schedule=uniform (equal steps
in t), init=standard (N(0, I); `--init target`: q_T), the exact score. Early stopping at VP time
t = ε = 1e-3, as they state it: the config's delta is in the OU clock, so it is
δ = B(ε) = β_min ε + (β_max − β_min) ε²/2 = 5.4975e-5. N goes up to 65536 because the
early-stopping bias this leaves is small (W2 about 5e-4): the discretisation error falls below
it only past N ~ 10^4.

For each sampler and N, one run through config.build and metrics.measure with
estimator.w2=exact_gaussian, once with reference=noised (against q_δ, as BBDD and PAD state
their bounds) and once with reference=data (against q_0). Writes the values to `--out` and
prints a Markdown table with the early-stopping bias W2(q_0, q_δ) under it: the W2 against
the data is within the W2 against q_δ of it (triangle inequality).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
from hydra import compose, initialize_config_dir

from diffusion_rates import config, metrics
from diffusion_rates.app import CONFIG_DIR
from diffusion_rates.metrics import exact

SETTING = [
    "target=gaussian_aniso",
    "process=vp_linear",
    "schedule=uniform",
    "metrics=[w2]",
    "estimator.w2=exact_gaussian",
    "output.dir=unused",  # nothing is written: measure only
]


def early_stopping(cfg, eps: float) -> float:
    """δ = B(ε): VP time ε in the OU clock of the config's process."""
    return float(config.build_process(cfg).clock(eps))


def w2(cfg) -> float:
    """The exact W2 of one run, through the app's own validation and estimator selection."""
    config.validate(cfg)
    estimator, value = metrics.measure(config.build(cfg))["w2"]
    assert estimator == "exact_gaussian" and value.status == "ok", (estimator, value)
    return value.value


def bias(cfg) -> float:
    """W2(q_0, q_δ) of the config's target: what early stopping alone costs."""
    target, delta = config.build(cfg).target, cfg.delta
    moments = (target.eigen_mean(0.0), target.eigen_variances(0.0))
    noised = (target.eigen_mean(delta), target.eigen_variances(delta))
    return float(exact.w2_gaussian(*moments, *noised))


def table(
    d: int, eps: float, init: str, samplers: list[str], steps: list[int]
) -> tuple[pd.DataFrame, float]:
    """One row per (sampler, N, reference), and the early-stopping bias."""
    with initialize_config_dir(CONFIG_DIR, version_base=None):
        base = [*SETTING, f"target.d={d}", f"init={init}"]
        delta = early_stopping(compose("config", overrides=base), eps)

        def cfg(*overrides):
            return compose("config", overrides=[*base, f"delta={delta!r}", *overrides])

        rows = [
            dict(
                sampler=s,
                steps=n,
                reference=ref,
                w2=w2(cfg(f"sampler={s}", f"steps={n}", f"reference={ref}")),
            )
            for s in samplers
            for n in steps
            for ref in metrics.REFERENCES
        ]
        cost = bias(cfg())
    return pd.DataFrame(rows).assign(d=d, eps=eps, delta=delta, init=init), cost


def markdown(frame: pd.DataFrame, cost: float) -> str:
    """Rows N; per sampler, W2 against q_δ and against the data."""
    wide = frame.pivot_table(index="steps", columns=["sampler", "reference"], values="w2")
    samplers = list(dict.fromkeys(frame.sampler))
    head = ["N"] + [f"{s}: {label}" for s in samplers for label in ("q_δ", "data")]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for n, row in wide.iterrows():
        cells = [f"{row[(s, ref)]:.3g}" for s in samplers for ref in metrics.REFERENCES]
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + f"\n\nW2(q_0, q_δ) = {cost:.3g} (the early-stopping bias)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--d", type=int, default=64)
    parser.add_argument("--eps", type=float, default=1e-3, help="early stopping, VP time t")
    parser.add_argument("--init", default="standard", help="standard = N(0, I), target = q_T")
    parser.add_argument("--samplers", nargs="+", default=["ei", "ddpm", "em", "ddim"])
    parser.add_argument("--steps", nargs="+", type=int, default=[4**k for k in range(2, 9)])
    parser.add_argument("--out", type=Path, default=Path("results/against_data.csv"))
    args = parser.parse_args()
    frame, cost = table(args.d, args.eps, args.init, args.samplers, args.steps)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    frame.assign(bias=cost).to_csv(args.out, index=False)
    print(markdown(frame, cost))


if __name__ == "__main__":
    main()
