"""One module per claim: the statement, its predicted shape, fits, verdict, figures, section.

Each module gives NAME, SWEEPS (the sweep directories under runs/ it reads, one per
configs/experiment/<sweep>.yaml), `fits(records)`, `figures(records, out_dir)`,
`section(records, fits, figures)` and `summary(fits, figures)` (its rows of the report's
headline table); `scripts/report.py` runs them in the order listed here.
"""

from experiments import bbdd, gaussian_baseline, lcw, pad, ptw

EXPERIMENTS = [gaussian_baseline, bbdd, lcw, pad, ptw]
