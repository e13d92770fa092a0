"""A progress bar over a sweep's jobs: a Hydra callback, registered in configs/config.yaml
(`hydra.callbacks.progress`).

The bar lives in the process that starts the multirun and is quiet when stderr is not a terminal
(tqdm's disable=None, as records.collect's). With the basic launcher, which `make reproduce`
uses, every job ends in that process and advances it; the other launchers run their jobs in
workers, whose copy of the callback finds no bar (it is module state, not pickled with the
callback) and reports nothing, and show progress their own way.
"""

from __future__ import annotations

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.experimental.callback import Callback
from omegaconf import DictConfig
from tqdm import tqdm

_BARS: list[tqdm] = []  # this process's bar while a multirun is under way


def job_count(config: DictConfig) -> int:
    """The jobs of the multirun that `config` starts, as the basic sweeper makes them: the
    product of the experiment's `hydra.sweeper.params` and the command line's own sweeps."""
    params = [f"{k}={v}" for k, v in (config.hydra.sweeper.get("params") or {}).items()]
    task = list(config.hydra.overrides.task)
    overrides = OverridesParser.create().parse_overrides(params + task)
    return sum(len(batch) for batch in BasicSweeper.split_arguments(overrides, None))


class JobProgress(Callback):
    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        bar = tqdm(total=job_count(config), desc=config.experiment, unit="job", disable=None)
        _BARS.append(bar)

    def on_job_end(self, config: DictConfig, job_return, **kwargs) -> None:
        if _BARS:
            _BARS[-1].update()

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        if _BARS:
            _BARS.pop().close()
