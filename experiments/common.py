"""What every claim module shares: slope specs fitted per group with verdicts, N*(ε) slopes,
log–log figures with floors shaded, and the markdown of a report section.

A claim module declares NAME, SWEEPS, COMMAND, its fits as `Slope` specs (SPECS; `NStar` for N*),
its figures as `Panels` (PANELS), and optionally `prepare(records)` (derived columns) and
`notes(records)` (claim-specific lines for its reading); `fits`, `figures`, `section` and
`summary` here turn those into tables, figures and text, so that every number the report prints
comes from the records.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from diffusion_rates import rates  # noqa: E402


def _all(records: pd.DataFrame) -> pd.DataFrame:
    return records


@dataclass(frozen=True)
class Slope:
    """The exponent p of `metric` ≈ c·x^p, fitted in each group of `by` over the runs `where`
    selects, against the claim's `predicted` exponent. With a `level`, the exponent is that of
    N*(level), the steps at which `metric` reaches `level`, against x (see `NStar`)."""

    name: str
    metric: str
    x: str
    by: tuple
    predicted: float
    where: Callable = _all
    lower_is_better: bool = True
    tolerance: float = 0.2
    headline: bool = True
    level: float | None = None


def NStar(name, metric, level, x, by, predicted, where=_all, **options) -> Slope:  # noqa: N802
    """The exponent of N*(level) against `x`, per group of `by`."""
    return Slope(name, metric, x, by, predicted, where, level=level, **options)


@dataclass(frozen=True)
class Panels:
    """A log–log figure: `metric` against `x`, one panel per value of `panel`, one line per
    group of `lines`; grey reference slopes through each panel's first line."""

    name: str
    title: str
    metric: str
    x: str
    panel: str
    lines: tuple
    ylabel: str
    where: Callable = _all
    reference: tuple = (-1.0,)
    xlabel: str = ""


def ok(records: pd.DataFrame) -> pd.DataFrame:
    return records[records.status == "ok"]


def _group_text(by, key) -> str:
    key = key if isinstance(key, tuple) else (key,)
    return ", ".join(f"{b}={_short(v)}" for b, v in zip(by, key, strict=True))


def _short(v) -> str:
    if isinstance(v, float | np.floating):
        return f"{v:g}"
    return str(v)


def _estimators(frame: pd.DataFrame) -> str:
    return "/".join(sorted(frame.estimator.unique()))


def _excluded(items) -> str:
    return "; ".join(f"{_short(i[0])}: {i[-1]}" for i in items)


def _row(spec, key, fit: rates.Fit, frame, x_values) -> dict:
    return dict(
        fit=spec.name,
        group=_group_text(spec.by, key),
        slope=fit.slope,
        ci_low=fit.ci_low,
        ci_high=fit.ci_high,
        n_points=fit.n_points,
        method=fit.method,
        predicted=spec.predicted,
        tolerance=spec.tolerance,
        lower_is_better=spec.lower_is_better,
        verdict=rates.verdict(fit, spec.predicted, spec.tolerance, spec.lower_is_better),
        estimator=_estimators(frame),
        x=spec.x,
        x_range=f"{_short(min(x_values))}–{_short(max(x_values))}",
        excluded=_excluded(fit.excluded),
        headline=spec.headline,
    )


def fit_table(records: pd.DataFrame, specs) -> pd.DataFrame:
    """One row per (spec, group): the fitted exponent, its 95% interval, the verdict and the
    points left out."""
    rows = []
    for spec in specs:
        frame = ok(spec.where(records))
        frame = frame[frame.metric == spec.metric]
        if frame.empty:
            continue
        for key, g in frame.groupby(list(spec.by)):
            if spec.level is None:
                fit = rates.fit_loglog_seeds(g, x=spec.x)
            else:
                table = rates.steps_to_reach_table(g, [spec.x], spec.level)
                fit = rates.fit_loglog(table[spec.x], table.n_star)
                found = zip(table[spec.x], table.n_star, table.reason, strict=True)
                missing = [(x, f"N* not found: {why}") for x, n, why in found if not np.isfinite(n)]
                fit = fit._replace(excluded=missing)
            rows.append(_row(spec, key, fit, g, g[spec.x]))
    return pd.DataFrame(rows)


def summary(table: pd.DataFrame, claim: str, figure: str) -> list[dict]:
    """Headline rows for the report's table: per fit, the median exponent over its groups with
    the range of their 95% intervals, and the count of each verdict."""
    out = []
    for name, g in table[table.headline].groupby("fit", sort=False):
        finite = g[np.isfinite(g.slope)]
        if finite.empty:
            measured = "no fit"
        elif len(finite) == 1:
            r = finite.iloc[0]
            measured = _interval(r.slope, r.ci_low, r.ci_high)
        else:
            measured = (
                f"median {finite.slope.median():.2f}; intervals from {finite.ci_low.min():.2f} "
                f"to {finite.ci_high.max():.2f} ({len(finite)} groups)"
            )
        counts = g.verdict.value_counts()
        verdict = ", ".join(f"{v} {n}/{len(g)}" for v, n in counts.items())
        out.append(
            dict(
                claim=claim,
                quantity=name,
                prediction=f"{g.predicted.iloc[0]:g}",
                measured=measured,
                estimator="/".join(sorted(set("/".join(g.estimator).split("/")))),
                verdict=verdict,
                figure=figure,
            )
        )
    return out


def _interval(slope, low, high) -> str:
    if not np.isfinite(slope):
        return "no fit"
    if not np.isfinite(low):
        return f"{slope:.2f} (no interval)"
    return f"{slope:.2f} [{low:.2f}, {high:.2f}]"


def markdown(table: pd.DataFrame) -> list[str]:
    """The fit table as markdown, one row per group."""
    lines = [
        "| fit | group | exponent [95%] | predicted | verdict | points | estimator | left out |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in table.itertuples():
        lines.append(
            f"| {r.fit} | {r.group} | {_interval(r.slope, r.ci_low, r.ci_high)} | "
            f"{r.predicted:g} | {r.verdict} | {r.n_points} ({r.x} {r.x_range}) | {r.estimator} "
            f"| {r.excluded or '—'} |"
        )
    return lines


def draw(records: pd.DataFrame, spec: Panels, out_dir: Path) -> list[Path]:
    """The figure of `spec`, as PNG and PDF; the band under the largest estimator floor of each
    panel is shaded (points there carry no rate information)."""
    frame = ok(spec.where(records))
    frame = frame[(frame.metric == spec.metric) & (frame.value > 0)]
    panels = sorted(frame[spec.panel].unique())
    ncols = min(3, max(1, len(panels)))
    nrows = -(-len(panels) // ncols) if panels else 1
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.4 * ncols, 3.5 * nrows), squeeze=False)
    axes = axes.ravel()
    for ax, value in zip(axes, panels, strict=False):
        g = frame[frame[spec.panel] == value]
        groups = list(g.groupby(list(spec.lines)))
        colours = plt.cm.viridis(np.linspace(0, 0.9, max(1, len(groups))))
        shaded = False
        for colour, (key, lg) in zip(colours, groups, strict=True):
            mean = lg.groupby(spec.x).agg(value=("value", "mean"), floor=("floor", "max"))
            label = _group_text(spec.lines, key)
            ax.loglog(mean.index, mean.value, "-o", ms=3, color=colour, label=label)
            # each line's floor, shaded where it comes near its values (an exact estimator's
            # rounding floor would only stretch the axis)
            near = np.isfinite(mean.floor) & (mean.floor > 1e-2 * mean.value)
            if near.any():
                floor = mean.floor.where(near)
                below = None if shaded else "under the floor (shaded)"
                ax.fill_between(
                    mean.index, floor / 10, floor, color=colour, alpha=0.15, lw=0, label=below
                )
                shaded = True
        xs = np.array(sorted(g[spec.x].unique()), dtype=float)
        if len(xs) > 1:
            first = g[g[spec.x] == xs[0]].value.median()
            for slope, style in zip(spec.reference, (":", "-.", "--"), strict=False):
                ax.loglog(
                    xs,
                    first * (xs / xs[0]) ** slope,
                    style,
                    color="grey",
                    lw=1,
                    label=f"slope {slope:g}",
                )
        if len(xs) > 1 and xs[-1] / xs[0] < 4:  # a narrow range: label the minor ticks
            ax.xaxis.set_minor_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        else:  # several decades: the minor labels would overlap
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_title(f"{spec.panel} = {_short(value)}")
        ax.set_xlabel(spec.xlabel or spec.x)
        ax.set_ylabel(spec.ylabel)
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=6)
    for ax in axes[len(panels) :]:
        ax.axis("off")
    fig.suptitle(spec.title)
    fig.tight_layout()
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{spec.name}.png", out_dir / f"{spec.name}.pdf"]
    for p in paths:  # no creation date: the same records give the same files
        fig.savefig(p, dpi=120, metadata={"CreationDate": None} if p.suffix == ".pdf" else None)
    plt.close(fig)
    return paths


def failures(records: pd.DataFrame) -> list[str]:
    """Markdown lines listing the runs with non-ok records: one line per run and status."""
    bad = records[records.status != "ok"]
    if bad.empty:
        return ["Failed or flagged runs: none."]
    columns = ["target", "d", "K", "sampler", "schedule", "steps", "status"]
    runs = bad.groupby(columns, sort=True).metric.agg(lambda m: ", ".join(sorted(set(m))))
    lines = [f"Failed or flagged runs ({len(runs)}; their records are left out of every fit):", ""]
    for key, metrics in runs.head(20).items():
        text = ", ".join(f"{c}={_short(v)}" for c, v in zip(columns[:-1], key[:-1], strict=True))
        lines.append(f"- {text} ({metrics}): {key[-1]}")
    if len(runs) > 20:
        lines.append(f"- … and {len(runs) - 20} more (see records.parquet)")
    return lines


def section(
    name: str,
    doc: str,
    records: pd.DataFrame,
    table: pd.DataFrame,
    figures: list[str],
    command: str,
    reading: list[str],
) -> str:
    """A claim's report section: statement, runs, figures, fit table, failures, reading."""
    lines = [f"## {name}", "", doc.split("\n\n", 1)[1].strip(), ""]
    lines += [
        f"Runs: {records.run_id.nunique()} ({len(records)} records). Rerun: `{command}`.",
        "Exponents: least squares of log value on log x over the usable points (10× above the "
        "estimator's floor, 3 standard errors above zero); 95% intervals by a bootstrap over "
        "seeds where there are several, else Student t on the residuals (a measure of "
        "curvature, not of noise).",
        "",
    ]
    lines += [f"![{Path(f).stem}]({f})" for f in figures] + [""]
    lines += markdown(table) + [""] + reading + [""] + failures(records) + [""]
    return "\n".join(lines)


MEANING = {
    "consistent": "the 95% interval meets the predicted exponent ± tolerance",
    "faster than predicted": "better than the bound says (the bound is loose here)",
    "slower than predicted": "worse than the bound says (violated, or pre-asymptotic)",
    "inconclusive": "fewer than 3 usable points, or an interval too wide to decide",
}


def reading(table: pd.DataFrame) -> str:
    """One sentence per fit, computed from the verdicts."""
    if table.empty:
        return "**Reading.** No fit: no usable records."
    out = ["**Reading.**"]
    for name, g in table.groupby("fit", sort=False):
        finite = g[np.isfinite(g.slope)]
        slopes = (
            f"exponents {finite.slope.min():.2f} to {finite.slope.max():.2f}"
            if len(finite) > 1
            else (f"exponent {finite.slope.iloc[0]:.2f}" if len(finite) else "no exponent")
        )
        counts = g.verdict.value_counts()
        verdicts = "; ".join(f"{n} of {len(g)} {v} ({MEANING[v]})" for v, n in counts.items())
        out.append(f"{name} (predicted {g.predicted.iloc[0]:g}): {slopes}; {verdicts}.")
    return " ".join(out)


def bayes(records: pd.DataFrame, metric: str, xs: tuple, title: str) -> list[str]:
    """Markdown lines: the posterior of log value = c + Σ b_i log x_i + noise (numpyro NUTS)
    over the usable ok records of `metric`, one row per exponent."""
    frame = ok(records)
    frame = frame[frame.metric == metric]
    try:
        post = rates.bayes_loglog(frame, xs=xs)
    except ValueError as exc:
        return [f"{title}: no posterior ({exc})."]
    lines = [
        f"{title}: posterior of log {metric} = c + Σ b_i log x_i + N(0, τ²) over "
        f"{len(frame)} records (usable points only; NUTS, one chain).",
        "",
        "| exponent of | posterior mean | 95% interval | r_hat |",
        "|---|---|---|---|",
    ]
    for r in post[post.param.isin(xs)].itertuples():
        lines.append(f"| {r.param} | {r.mean:.2f} | [{r[4]:.2f}, {r[5]:.2f}] | {r.r_hat:.3f} |")
    return lines


def _prepared(module, records: pd.DataFrame) -> pd.DataFrame:
    prepare = getattr(module, "prepare", None)
    return prepare(records) if prepare else records


def fits(module, records: pd.DataFrame) -> pd.DataFrame:
    return fit_table(_prepared(module, records), module.SPECS)


def figures(module, records: pd.DataFrame, out_dir: Path) -> list[Path]:
    return [draw(_prepared(module, records), spec, out_dir)[0] for spec in module.PANELS]


def claim_section(module, records: pd.DataFrame, table: pd.DataFrame, figures: list[str]) -> str:
    notes = getattr(module, "notes", None)
    lines = [reading(table), *(notes(records) if notes else [])]
    return section(module.NAME, module.__doc__, records, table, figures, module.COMMAND, lines)


def looseness(frame: pd.DataFrame, shape, label: str) -> str:
    """How loose the bound C·shape is on the usable ok records of `frame` (above their floors):
    the constant fitted in log space, the tightest one, and measured ÷ tightest bound."""
    frame = ok(frame)
    frame = frame[rates.usable(frame.value, frame.floor, frame.stderr)]
    if len(frame) < 3:
        return f"Bound {label}: {len(frame)} usable points, too few to fit its constant to."
    fit = rates.fit_constant(frame, frame.value.to_numpy(), shape)
    return (
        f"Bound {label}: fitted constant {fit.C:.2g} (geometric mean), tightest {fit.C_sup:.2g}; "
        f"measured ÷ tightest bound from {np.min(fit.looseness):.2g} to "
        f"{np.max(fit.looseness):.2g} (values far under 1: the bound is loose there)."
    )
