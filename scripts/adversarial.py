"""The adversarial pass over the command line (README, "Reliability").

Runs every malformed command line of CASES as `.venv/bin/diffusion-rates` (a subprocess each, in
a fresh temporary working directory, with a small timeout), and checks that each one exits
non-zero with exactly one line on stderr, no traceback, and nothing written: no output folder,
no sweep folder, no records anywhere under the working directory. Prints one line per failing
case and a summary line; exit status 1 when any case fails.

    python scripts/adversarial.py [--jobs 2] [--timeout 60] [--first N]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CLI = str(ROOT / ".venv" / "bin" / "diffusion-rates")
SWEEP = ["-m", "target.d=2", "steps=4,8"]

# (environment, arguments): {out} is the output folder, {dir} the working directory
CASES: list[tuple[dict, list[str]]] = [
    *[
        ({}, [f"{key}={value}"])
        for key, values in {
            "sampler": ["foo", "EI", "''", "null", "1"],
            "schedule": ["linear", "cosine"],
            "process": ["ve", "vp"],
            "target": ["banana", "gauss"],
            "score_error": ["typo"],
            "scale": ["huge"],
            "experiment": ["no_such_claim"],
            "steps": ["0", "-1", "abc", "2.5", "null", "[4]", "true"],
            "T": ["-1", "0", "abc", "1e400", "nan"],
            "delta": ["-1", "abc", "10"],
            "n_samples": ["0", "-5", "1.5", "abc"],
            "seed": ["-1", "abc", "0.5"],
            "init": ["zero", "1"],
            "precision": ["float16", "double"],
            "reference": ["both", "q0"],
            "force": ["maybe", "2"],
            "metrics": ["[]", "[kl,tv2]", "kl2", "[w3]"],
            "estimator.w2": ["banana", "quadrature"],
            "estimator.kl": ["sliced"],
            "target.d": ["0", "-2", "abc", "2.5"],
            "target.spectrum": ["banana"],
            "target.mean_norm": ["-1"],
            "target.power": ["abc"],
            "score_error.eps": ["-0.1", "abc"],
            "density_ratio.paths": ["0", "3", "2"],
            "density_ratio.max_paths": ["8"],
            "density_ratio.floor_target": ["0", "-1"],
            "density_ratio.reduction": ["half"],
            "stepz": ["3"],
            "target.dd": ["3"],
        }.items()
        for value in values
    ],
    ({}, ["T=5", "delta=5"]),
    ({}, ["process=vp_linear", "T=6"]),
    ({}, ["schedule=bbdd", "delta=0"]),
    ({}, ["schedule=lcw", "T=5"]),
    ({}, ["score_error=bias", "score_error.eps=-0.1"]),
    ({}, ["score_error=noise", "sampler=ddim", "metrics=[kl]"]),
    ({}, ["target=gaussian", "density_ratio.reduction=span"]),
    ({}, ["reference=data", "estimator.kl=density_ratio", "target=gmm"]),
    ({}, ["~steps"]),
    ({}, ["~target.d"]),
    ({}, ["+foo=1"]),
    ({}, ["++steps=8"]),
    ({}, ["+target.extra=1"]),
    ({}, ["steps="]),
    ({}, ["=3"]),
    ({}, ["steps=[1,2"]),
    ({}, ["target=gmm", "target.K=10000000"]),
    ({}, ["target=gmm", "n_samples=1000000000", "metrics=[kl]"]),
    ({}, ["n_samples=1000000000", "metrics=[w2]", "estimator.w2=gaussian_fit"]),
    ({}, ["target=point_cloud", "target.K=100000000"]),
    ({}, ["output.dir=/proc/x"]),
    ({}, ["output.dir={dir}/afile/below"]),
    ({"DIFFUSION_RATES_TIMEOUT_S": "abc"}, []),
    ({"DIFFUSION_RATES_TIMEOUT_S": "-1"}, []),
    ({"DIFFUSION_RATES_TIMEOUT_S": "0"}, []),
    ({"DIFFUSION_RATES_MEMORY_GB": "lots"}, []),
    ({"DIFFUSION_RATES_MEMORY_GB": "-4"}, []),
    ({"DIFFUSION_RATES_DONE": "nofingerprint"}, ["-m", "steps=4"]),
    ({}, ["target.spectrum=file", "target.spectrum_file={dir}/missing.npy"]),
    ({}, ["target.spectrum=file", "target.spectrum_file={dir}/two_d.npy"]),
    ({}, ["target.spectrum=file", "target.spectrum_file={dir}/text.npy"]),
    ({}, ["target.spectrum=file", "target.spectrum_file={dir}/strings.npy"]),
    ({}, ["target.spectrum=file", "target.spectrum_file={dir}/negative.npy", "target.d=3"]),
    ({}, [*SWEEP, "output.dir={out}"]),
    ({}, ["-m", "steps=8,16,32", "target.d=4", "output.dir={out}"]),
    ({}, [*SWEEP, "hydra.sweep.subdir=same"]),
    ({}, ["-m", "experiment=gaussian_baseline", "scale=smoke", "output.dir={out}"]),
    ({}, ["-m", "steps=8,0"]),
    ({}, ["-m", "sampler=ei,foo"]),
    ({}, ["-m", "target.d=2,abc"]),
    ({}, ["-m", "+bar=1,2"]),
    ({}, ["-m", "hydra/launcher=slurm"]),
    ({}, ["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=abc"]),
    ({}, ["-m", "hydra/launcher=submitit_slurm", "hydra.launcher.partitio=gpu"]),
    ({}, ["-m", "experiment=no_such_claim"]),
    ({}, ["-m", "experiment=gaussian_baseline", "scale=huge"]),
    ({}, ["-m", "experiment=gaussian_baseline", "scale=smoke", "steps=0"]),
]


def _data(folder: Path) -> None:
    """The files some cases point at: spectra that are not 1-D arrays of finite numbers >= 0,
    and a file for a path below a file."""
    np.save(folder / "two_d.npy", np.ones((3, 2)))
    np.save(folder / "strings.npy", np.array(["a", "b", "c"]))
    np.save(folder / "negative.npy", np.array([1.0, -0.5, 0.2]))
    (folder / "text.npy").write_text("not an npy file")
    (folder / "afile").write_text("")


def check(case: tuple[dict, list[str]], timeout: float) -> str | None:
    """None when the case is refused as it should be; else why not."""
    env, args = case
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        _data(work)
        out = work / "out"
        argv = [a.format(out=out, dir=work) for a in args]
        if not any(a.startswith(("output.dir=", "hydra.sweep.")) for a in argv):
            argv.append(f"output.dir={out}" if "-m" not in argv else f"hydra.sweep.dir={out}")
        before = {p for p in work.rglob("*")}
        environ = {**os.environ, "DIFFUSION_RATES_COMPILE_CACHE": "off", **env}
        try:
            done = subprocess.run(
                [CLI, *argv], cwd=work, env=environ, capture_output=True, text=True,
                timeout=timeout,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            return f"ran past {timeout:g} s"
        lines = done.stderr.strip().splitlines()
        written = sorted(str(p.relative_to(work)) for p in set(work.rglob("*")) - before)
        if done.returncode == 0:
            return "exit status 0"
        if "Traceback" in done.stderr:
            return f"a traceback: {lines[-1] if lines else ''}"
        if len(lines) != 1:
            return f"{len(lines)} lines on stderr: {' | '.join(lines)[:300]}"
        if written:
            return f"wrote {', '.join(written)[:200]}"
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--first", type=int, default=None, help="only the first N cases")
    args = parser.parse_args()
    cases = CASES[: args.first]
    with ThreadPoolExecutor(args.jobs) as pool:
        verdicts = list(pool.map(lambda c: check(c, args.timeout), cases))
    for (env, argv), why in zip(cases, verdicts, strict=True):
        if why:
            shown = " ".join([*(f"{k}={v}" for k, v in env.items()), *argv])
            print(f"FAIL  {shown}: {why}")
    failed = sum(why is not None for why in verdicts)
    print(
        f"adversarial: {len(cases)} malformed command lines, {len(cases) - failed} refused "
        f"cleanly (non-zero exit, one line on stderr, no traceback, nothing written), "
        f"{failed} not"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
