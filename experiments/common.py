"""What every claim module shares: slope specs fitted per group with verdicts, N*(ε) slopes,
log–log figures (one colour per sampler in all of them, Monte Carlo error bars, floors shaded,
panels of fewer than three points left out and said), and the markdown of a report section.

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
from typing import NamedTuple

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from diffusion_rates import rates  # noqa: E402
from diffusion_rates.samplers import SAMPLERS  # noqa: E402


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
    size: tuple = (4.2, 3.4)  # inches per panel


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


# One colour per sampler in every figure: tab10 in the order of SAMPLERS, without its grey (7),
# which the reference slopes and the floor band use.
SAMPLER_COLOURS = {
    name: matplotlib.colors.to_hex(plt.cm.tab10(i))
    for name, i in zip(SAMPLERS, (0, 1, 2, 3, 4, 5, 6, 8, 9), strict=False)
}
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
LINESTYLES = ("-", "--", "-.", ":")
MIN_POINTS = 3  # a panel shows a rate only with this many values of x; fewer are left out
FLOOR_NEAR = 1e-2  # a floor under this fraction of its values is not shaded (it would only
# stretch the axis: an exact estimator's rounding floor)


class Drawing(NamedTuple):
    """A figure's files (PNG, PDF; none when every panel was left out) and one line per panel
    left out."""

    paths: list[Path]
    left_out: list[str]


def sampler_colour(name: str) -> str:
    """The sampler's colour in every figure (black for anything else, e.g. several samplers)."""
    return SAMPLER_COLOURS.get(name, "#000000")


def _shade(colour: str, j: int, n: int) -> tuple:
    """The j-th of n shades of `colour`, from darker (mixed with 35% black) to lighter (45%
    white), so that lines of one sampler stay its colour and still tell their order."""
    rgb = np.array(matplotlib.colors.to_rgb(colour))
    t = -0.35 + 0.8 * j / (n - 1) if n > 1 else 0.0
    return tuple(rgb * (1 + t) if t < 0 else rgb + (1 - rgb) * t)


def _key(key) -> tuple:
    return key if isinstance(key, tuple) else (key,)


def line_styles(frame: pd.DataFrame, panel: str, lines: tuple) -> dict:
    """(colour, marker, linestyle) of each line, keyed by (panel value, line key): the colour is
    the line's sampler's (SAMPLER_COLOURS; black for a line of several samplers); the other keys
    of `lines` pick the marker and the line style, the same in every panel, and, when the
    sampler is not among them (one sampler per panel or figure), a shade of its colour."""
    others = [c for c in lines if c != "sampler"]
    variants = sorted({_key(k) for k, _ in frame.groupby(others)}) if others else [()]
    styles = {}
    for key, g in frame.groupby([panel, *lines]):
        values = dict(zip(lines, key[1:], strict=True))
        samplers = g.sampler.unique()
        colour = sampler_colour(samplers[0] if len(samplers) == 1 else "")
        j = variants.index(tuple(values[c] for c in others))
        if "sampler" not in lines:
            colour = _shade(colour, j, len(variants))
        linestyle = LINESTYLES[(j + j // len(MARKERS)) % len(LINESTYLES)]
        styles[key[0], key[1:]] = (colour, MARKERS[j % len(MARKERS)], linestyle)
    return styles


def _legend(frame: pd.DataFrame, lines: tuple, styles: dict) -> list:
    """Legend handles: one per line (in its colour if that is the same in every panel, else in a
    grey shade); or, for lines grouped by the sampler and more, one per sampler (its colour)
    and one per value of the other keys (marker and line style, grey)."""
    others = [c for c in lines if c != "sampler"]
    per_line = {}
    for (_, key), style in sorted(styles.items(), key=lambda item: item[0][1]):
        per_line.setdefault(key, []).append(style)
    if "sampler" not in lines or not others or frame.sampler.nunique() == 1:
        handles = []
        for j, (key, found) in enumerate(per_line.items()):
            colours = {matplotlib.colors.to_hex(c) for c, _, _ in found}
            colour = found[0][0] if len(colours) == 1 else _shade("#595959", j, len(per_line))
            _, marker, ls = found[0]
            label = _group_text(lines, key)
            handles.append(
                matplotlib.lines.Line2D(
                    [], [], color=colour, marker=marker, ls=ls, ms=4, label=label
                )
            )
        return handles
    order = {name: i for i, name in enumerate(SAMPLERS)}
    samplers = sorted(frame.sampler.unique(), key=lambda s: order.get(s, len(order)))
    handles = [
        matplotlib.lines.Line2D([], [], color=sampler_colour(s), lw=2, label=f"sampler={s}")
        for s in samplers
    ]
    seen = {}
    for key, found in per_line.items():
        rest = tuple(v for c, v in zip(lines, key, strict=True) if c != "sampler")
        seen.setdefault(rest, found[0][1:])
    return handles + [
        matplotlib.lines.Line2D(
            [], [], color="0.35", marker=m, ls=ls, ms=4, label=_group_text(others, rest)
        )
        for rest, (m, ls) in sorted(seen.items())
    ]


def _points(frame: pd.DataFrame, x: str) -> pd.DataFrame:
    """Per value of x: the mean over seeds, its standard error √(Σ se_i²)/n (the Monte Carlo
    error of each estimate; 0 for exact estimators) and the largest floor."""
    return frame.groupby(x).agg(
        value=("value", "mean"),
        stderr=("stderr", lambda se: np.sqrt(np.sum(np.square(se))) / len(se)),
        floor=("floor", "max"),
    )


def kept_panels(frame: pd.DataFrame, spec: Panels) -> tuple[list, list[str]]:
    """The panels with at least MIN_POINTS values of x, and a line for each one left out."""
    kept, left_out = [], []
    for value in sorted(frame[spec.panel].unique()):
        xs = sorted(frame[frame[spec.panel] == value][spec.x].unique())
        if len(xs) >= MIN_POINTS:
            kept.append(value)
        else:
            at = ", ".join(_short(v) for v in xs)
            left_out.append(
                f"panel {spec.panel} = {_short(value)} left out: {len(xs)} value"
                f"{'s' if len(xs) != 1 else ''} of {spec.x} ({at}), fewer than {MIN_POINTS}"
            )
    return kept, left_out


def draw(records: pd.DataFrame, spec: Panels, out_dir: Path) -> Drawing:
    """The figure of `spec`, as PNG and PDF: one panel per value of `spec.panel` with at least
    MIN_POINTS values of x (the others are left out, and said), each line in its sampler's
    colour (`line_styles`), bars of ± 2 standard errors where an estimate has Monte Carlo error,
    the band under each panel's largest estimator floor shaded light grey beneath the points
    (points there carry no rate information), and one legend right of the panels."""
    frame = ok(spec.where(records))
    frame = frame[(frame.metric == spec.metric) & (frame.value > 0)]
    panels, left_out = kept_panels(frame, spec)
    if not panels:
        return Drawing([], left_out or [f"no ok records of {spec.metric} with a value > 0"])
    frame = frame[frame[spec.panel].isin(panels)]
    styles = line_styles(frame, spec.panel, spec.lines)
    ncols = min(3, len(panels))
    nrows = -(-len(panels) // ncols)
    width, height = spec.size
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False)
    axes = axes.ravel()
    extras = {}  # legend entries beyond the lines: floor band, error bars, reference slopes
    for ax, value in zip(axes, panels, strict=False):
        g = frame[frame[spec.panel] == value]
        floors, shown = [], []
        for key, lg in g.groupby(list(spec.lines)):
            colour, marker, ls = styles[value, _key(key)]
            pts = _points(lg, spec.x)
            ax.loglog(pts.index, pts.value, ls=ls, marker=marker, ms=3.5, color=colour, zorder=3)
            shown += [pts.value, pts.value + 2 * pts.stderr]
            if (pts.stderr > 0).any():
                bars = pts[pts.stderr > 0]
                ax.errorbar(
                    bars.index,
                    bars.value,
                    yerr=[np.minimum(2 * bars.stderr, bars.value * (1 - 1e-9)), 2 * bars.stderr],
                    fmt="none",
                    ecolor=colour,
                    elinewidth=0.8,
                    capsize=2,
                    zorder=3,
                )
                extras["± 2 standard errors"] = matplotlib.lines.Line2D(
                    [], [], color="0.35", marker="|", ms=9, ls="none"
                )
            near = np.isfinite(pts.floor) & (pts.floor > FLOOR_NEAR * pts.value)
            floors.append(pts.floor.where(near))
        xs = np.array(sorted(g[spec.x].unique()), dtype=float)
        first = g[g[spec.x] == xs[0]].value.median()
        for slope, style in zip(spec.reference, (":", "-.", "--"), strict=False):
            ax.loglog(xs, first * (xs / xs[0]) ** slope, style, color="grey", lw=1, zorder=2)
            extras[f"slope {slope:g}"] = matplotlib.lines.Line2D(
                [], [], color="grey", ls=style, lw=1
            )
        floor = pd.concat(floors, axis=1).max(axis=1).reindex(xs)
        values = pd.concat(shown)
        low = min(values.min(), floor.min(skipna=True) if floor.notna().any() else np.inf)
        ax.set_ylim(low / 2, values.max() * 2)  # the points and error bars, not the references
        if floor.notna().any():
            ax.fill_between(xs, low / 2, floor, color="0.6", alpha=0.2, lw=0, zorder=1)
            extras["under the floor (shaded)"] = matplotlib.patches.Patch(color="0.6", alpha=0.2)
        if xs[-1] / xs[0] < 4:  # a narrow range: label the minor ticks
            ax.xaxis.set_minor_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        else:  # several decades: the minor labels would overlap
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_title(f"{spec.panel} = {_short(value)}")
        ax.set_xlabel(spec.xlabel or spec.x)
        ax.set_ylabel(spec.ylabel)
        ax.grid(True, which="major", alpha=0.3)
    for ax in axes[len(panels) :]:
        ax.axis("off")
    handles = _legend(frame, spec.lines, styles)
    labels = [h.get_label() for h in handles] + list(extras)
    fig.suptitle(spec.title)
    fig.tight_layout()
    fig.legend(
        [*handles, *extras.values()],
        labels,
        loc="center left",
        bbox_to_anchor=(1.0, 0.5),
        fontsize=7,
        frameon=False,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{spec.name}.png", out_dir / f"{spec.name}.pdf"]
    for p in paths:  # no creation date: the same records give the same files
        metadata = {"CreationDate": None} if p.suffix == ".pdf" else None
        fig.savefig(p, dpi=120, bbox_inches="tight", metadata=metadata)
    plt.close(fig)
    return Drawing(paths, left_out)


def failures(records: pd.DataFrame) -> list[str]:
    """Markdown lines listing the runs with non-ok records: one line per run and status."""
    bad = records[records.status != "ok"]
    if bad.empty:
        return ["Failed or flagged runs: none."]
    columns = ["target", "d", "K", "sampler", "schedule", "steps", "status"]
    # dropna=False: a column without a value for the target (K of a Gaussian) keeps its runs
    runs = bad.groupby(columns, sort=True, dropna=False).metric.agg(
        lambda m: ", ".join(sorted(set(m)))
    )
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
    left_out: list[str] = (),
) -> str:
    """A claim's report section: statement, runs, figures (and the panels left out of them),
    fit table, failures, reading."""
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
    if left_out:
        lines += [f"Left out of the figures: {'; '.join(left_out)}.", ""]
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


def figures(module, records: pd.DataFrame, out_dir: Path) -> list[Drawing]:
    """The module's PANELS drawn; each line of what was left out starts with its figure's name."""
    out = []
    for spec in module.PANELS:
        drawn = draw(_prepared(module, records), spec, out_dir)
        if drawn.paths:
            lines = [f"{spec.name}: {t}" for t in drawn.left_out]
        else:
            lines = [f"{spec.name} not drawn ({'; '.join(drawn.left_out)})"]
        out.append(drawn._replace(left_out=lines))
    return out


def claim_section(
    module, records: pd.DataFrame, table: pd.DataFrame, figures: list[str], left_out=()
) -> str:
    notes = getattr(module, "notes", None)
    lines = [reading(table), *(notes(records) if notes else [])]
    return section(
        module.NAME, module.__doc__, records, table, figures, module.COMMAND, lines, left_out
    )


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
