"""A small sweep from Python: the exact KL of the exponential integrator on a Gaussian against
the number of steps N, its fitted exponent (KL ~ N^slope) and a figure.

Run: `.venv/bin/python examples/small_sweep.py [directory]`, the figure's directory (default: a
new temporary one).
"""

import math
import sys
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

import diffusion_rates as dr  # noqa: E402
from diffusion_rates import rates  # noqa: E402

out = Path(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp())
q = dr.target("gaussian", d=10, spectrum="power_law")
steps = [8, 16, 32, 64, 128]
kl = [dr.measure("kl", q, "ei", dr.grid(steps=n, T=8.0))["kl"] for n in steps]
values = [m.value for m in kl]
fit = rates.fit_loglog(steps, values, floor=[m.floor for m in kl])
print(f"KL ~ N^{fit.slope:.3f} (95%: {fit.ci_low:.3f} to {fit.ci_high:.3f}), {kl[0].estimator}")

fig, ax = plt.subplots(figsize=(4, 3))
ax.loglog(steps, values, "o", label="ei, exact KL")
ax.loglog(steps, [math.exp(fit.intercept) * n**fit.slope for n in steps], "--", label="fit")
ax.set(xlabel="steps N", ylabel="KL(output, q_δ)", title=f"slope {fit.slope:.2f}")
ax.legend()
out.mkdir(parents=True, exist_ok=True)
fig.savefig(out / "small_sweep.png", dpi=120, bbox_inches="tight")
print(f"wrote {out / 'small_sweep.png'}")
