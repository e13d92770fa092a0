"""One module per claim: the statement, its predicted shape, fits, verdict, figures, section.

Each module gives NAME, `fits(records)`, `figures(records, out_dir)` and
`section(records, fits, figure)`; `scripts/report.py` runs them in the order listed here.
"""

from experiments import gaussian_baseline

EXPERIMENTS = [gaussian_baseline]
