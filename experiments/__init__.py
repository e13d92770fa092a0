"""One module per claim: the statement, its predicted shape, fits, verdict, figures, section.

Each module gives NAME and SWEEPS (the sweep directories under runs/ it reads, one per
configs/experiment/<sweep>.yaml). A claim declares its fits and figures (SPECS, PANELS, see
experiments/common.py); the calibration `gaussian_baseline` has its own `fits`, `figures`,
`section` and `summary`. `scripts/report.py` runs them in the order listed here.
"""

from experiments import bbdd, gaussian_baseline, lcw, learned_score, pad, ptw, work_precision

EXPERIMENTS = [gaussian_baseline, bbdd, lcw, pad, ptw, learned_score, work_precision]
