"""experiments/common.py's figures: panels with fewer than three values of x are left out and
said, every sampler keeps one colour in every figure, Monte Carlo error bars, and the sweep's
progress bar counts the jobs the sweeper makes."""

import matplotlib.colors
import numpy as np
import pandas as pd
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from diffusion_rates import app, progress, status
from diffusion_rates.samplers import SAMPLERS
from experiments import common


def frame(rows) -> pd.DataFrame:
    """Records (sampler, target, steps, value[, stderr]) of one metric, ok, with a tiny floor."""
    out = pd.DataFrame(
        rows, columns=["sampler", "target", "steps", "value", "stderr"][: len(rows[0])]
    )
    defaults = dict(metric="kl", status="ok", floor=1e-12, schedule="uniform", stderr=0.0)
    return out.assign(**{k: v for k, v in defaults.items() if k not in out})


SPEC = common.Panels("fig", "a figure", "kl", "steps", "target", ("sampler",), "KL")


def test_a_panel_with_fewer_than_three_points_is_left_out_and_said(tmp_path):
    rows = [("ei", "a", n, 1.0 / n) for n in (8, 16, 32)] + [("ei", "b", 8, 0.1)]
    drawn = common.draw(frame(rows), SPEC, tmp_path)
    assert [p.name for p in drawn.paths] == ["fig.png", "fig.pdf"]
    assert drawn.left_out == ["panel target = b left out: 1 value of steps (8), fewer than 3"]
    section = common.section(
        "x",
        "x\n\nstatement",
        frame(rows).assign(run_id=1),
        pd.DataFrame(columns=["fit"]),
        [],
        "make x",
        [],
        drawn.left_out,
    )
    assert "Left out of the figures: panel target = b left out: 1 value of steps" in section


def test_a_figure_without_a_panel_is_not_drawn(tmp_path):
    rows = [("ei", "a", n, 1.0 / n) for n in (8, 16)]
    drawn = common.draw(frame(rows), SPEC, tmp_path)
    assert drawn.paths == [] and not list(tmp_path.iterdir())
    assert drawn.left_out == ["panel target = a left out: 2 values of steps (8, 16), fewer than 3"]


def test_each_sampler_has_one_colour_in_every_figure():
    """A sampler's lines take its colour whatever else the figure holds, grouped by the sampler
    (one colour per sampler) or by other keys (shades of it, the marker telling them apart)."""
    one = frame([(s, "a", n, 1.0 / n) for s in ("em", "sra1") for n in (8, 16, 32)])
    two = frame([(s, "b", n, 1.0 / n) for s in ("sra1", "ei", "ddim") for n in (8, 16, 32)])
    colours = [common.line_styles(f, "target", ("sampler",)) for f in (one, two)]
    assert colours[0]["a", ("sra1",)][0] == colours[1]["b", ("sra1",)][0]
    assert colours[0]["a", ("em",)][0] == common.SAMPLER_COLOURS["em"]
    assert len(set(common.SAMPLER_COLOURS.values())) == len(SAMPLERS)
    assert matplotlib.colors.to_hex("tab:gray") not in common.SAMPLER_COLOURS.values()
    # lines by schedule keep the sampler's colour and differ in marker
    by = ("sampler", "schedule")
    mixed = pd.concat([two, two.assign(schedule="karras")])
    styles = common.line_styles(mixed, "target", by)
    assert styles["b", ("ei", "karras")][0] == styles["b", ("ei", "uniform")][0]
    assert styles["b", ("ei", "karras")][1] != styles["b", ("ei", "uniform")][1]
    # one sampler, lines by d: shades of its colour, darker to lighter
    shades = common.line_styles(one[one.sampler == "em"].assign(d=one.steps), "target", ("d",))
    rgb = [np.array(matplotlib.colors.to_rgb(c)) for c, _, _ in shades.values()]
    hue = np.array(matplotlib.colors.to_rgb(common.SAMPLER_COLOURS["em"]))
    assert np.allclose(rgb[0], 0.65 * hue) and np.allclose(rgb[-1], hue + 0.45 * (1 - hue))


def test_error_bars_are_two_standard_errors_of_the_seed_mean(tmp_path):
    rows = [("ei", "a", n, v, se) for n in (8, 16, 32) for v, se in ((1.0, 0.3), (3.0, 0.4))]
    points = common._points(frame(rows), "steps")
    assert np.allclose(points.value, 2.0) and np.allclose(points.stderr, 0.25)
    drawn = common.draw(frame(rows), SPEC, tmp_path)
    assert drawn.paths and drawn.left_out == []


def test_the_progress_bar_counts_the_sweepers_jobs():
    """As many jobs as the status survey finds: the experiment's sweep times the command
    line's own (as a multirun has it in hydra.overrides.task)."""
    with initialize_config_dir(app.CONFIG_DIR, version_base=None):
        base = ["experiment=work_precision", "scale=smoke"]
        cfg = compose("config", overrides=base, return_hydra_config=True)
    assert cfg.hydra.callbacks.progress._target_ == "diffusion_rates.progress.JobProgress"
    assert progress.job_count(cfg) == 2 * 2 * 3  # samplers × schedules × steps at smoke
    OmegaConf.update(cfg, "hydra.overrides.task", [*base, "seed=0,1"])
    assert progress.job_count(cfg) == 2 * 2 * 3 * 2 == len(status.jobs([*base, "seed=0,1"])[1])
