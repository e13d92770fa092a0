"""One run from Python: a target, a time grid, the sampler's output and one metric.

Run: `.venv/bin/python examples/one_run.py`.
"""

import diffusion_rates as dr

q = dr.target("product_close", d=4)  # configs/target/product_close.yaml with d = 4
g = dr.grid(schedule="bbdd", steps=64, T=5.0)  # OU clock, δ = 1e-3 (the config's)
x = dr.sample(q, "ei", g, n=4096, seed=0)  # (4096, 4): the exponential integrator's output
kl = dr.measure("kl", q, "ei", g, n=4096, seed=0)["kl"]  # what the command line records
print(f"output {x.shape}, mean {float(x.mean()):+.3f}")
print(f"KL = {kl.value:.4g} ± {kl.stderr:.2g} (floor {kl.floor:.2g}, {kl.estimator})")
