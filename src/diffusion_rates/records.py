"""Tidy records: one row per metric of one run, keyed by a run id.

The run id hashes the resolved config (output location and `force` left out) together with the
code version (a hash of this package's source), so a cached record is reused only when both agree.
Files are written to a temporary name and renamed, so a killed run never leaves a partial file.
A failed run has records too, whose `status` names the reason (`FAILED`); a rerun of the sweep
retries those that may pass another time (an error, a timeout) and keeps the rest.
"""

from __future__ import annotations

import hashlib
import json
import os
from functools import cache
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from diffusion_rates.validation import ConfigError

RECORDS = "records.parquet"
COLUMNS = [
    "run_id",
    "experiment",
    "target",
    "target_config",
    "d",
    "intrinsic_dim",
    "K",
    "process",
    "sampler",
    "schedule",
    "steps",
    "T",
    "delta",
    "init",
    "score_error",
    "eps_score",
    "seed",
    "n_samples",
    "precision",
    "reference",
    "metric",
    "estimator",
    "value",
    "stderr",
    "floor",
    "status",
    "reduction",
    "wall_s",
    "device",
    "code_version",
]
NOT_HASHED = ("output", "force")
FAILED = ("non-finite", "error", "timeout")  # statuses of a failed run, by their first word
RETRIED = ("error", "timeout")  # failures that a rerun computes again


@cache
def code_version() -> str:
    """Hash of every source file of the package: a change of code invalidates cached runs."""
    digest = hashlib.sha256()
    root = Path(__file__).parent
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def read_files(config, key: str = "") -> dict[str, str]:
    """{dotted key: SHA-256 of the file's bytes} for every `*_file` key of the config naming a
    file: the data a config reads, which its path alone does not pin down."""
    if not isinstance(config, dict):
        return {}
    found = {}
    for k, v in config.items():
        dotted = f"{key}.{k}" if key else str(k)
        if isinstance(v, dict):
            found.update(read_files(v, dotted))
        elif str(k).endswith("_file") and isinstance(v, str) and Path(v).is_file():
            found[dotted] = hashlib.sha256(Path(v).read_bytes()).hexdigest()
    return found


def run_id(config: dict) -> str:
    """The cache key: the resolved config (NOT_HASHED left out), the bytes of every file it reads
    (`read_files`) and the code version."""
    hashed = {k: v for k, v in config.items() if k not in NOT_HASHED}
    hashed["_files"] = read_files(hashed)
    text = json.dumps(hashed, sort_keys=True, default=str) + code_version()
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cached(out_dir: Path, rid: str) -> bool:
    """True when `out_dir` already holds complete records of this run id."""
    path = Path(out_dir) / RECORDS
    if not path.is_file():
        return False
    try:
        frame = pd.read_parquet(path, columns=["run_id", "status"])
    except Exception:  # an unreadable file is recomputed, never trusted
        return False
    retried = frame.status.astype(str).str.startswith(RETRIED).any()
    return len(frame) > 0 and bool((frame.run_id == rid).all()) and not retried


def check_writable(out_dir: Path) -> None:
    """Refuse, before any compute, an output folder this process cannot create or write into
    (a read-only place such as /proc, a path below a file), rather than lose the run's result
    to a traceback when it is written."""
    probe = Path(out_dir) / f".probe.{os.getpid()}"
    try:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(
            f"output.dir: a folder this process can write (got {str(out_dir)!r}: {exc.strerror})"
        ) from None


def _atomic_write(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:  # Ctrl-C or a full disk: no half-written file stays behind
        tmp.unlink(missing_ok=True)
        raise


def write(out_dir: Path, rows: list[dict], config_yaml: str) -> Path:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(rows).reindex(columns=COLUMNS)
    _atomic_write(out_dir / "config.yaml", lambda p: p.write_text(config_yaml))
    _atomic_write(out_dir / RECORDS, lambda p: frame.to_parquet(p, index=False))
    return out_dir / RECORDS


def collect(root: Path) -> pd.DataFrame:
    """All records under `root` (a sweep directory), one frame; unreadable files are skipped, and
    a run found in several files (a job folder holding a copy of another's records) is kept
    once; both say so, naming the files, as the status command counts such a folder missing."""
    frames = []
    paths = sorted(Path(root).rglob(RECORDS))
    # a progress bar on a terminal only (disable=None: quiet when stderr is not a tty)
    for path in tqdm(paths, desc=f"records {Path(root).name}", unit="run", disable=None):
        try:
            frames.append(pd.read_parquet(path).assign(_file=str(path)))
        except Exception as exc:
            tqdm.write(f"skipping unreadable {path}: {exc}")
    if not frames:
        return pd.DataFrame(columns=COLUMNS)
    frame = pd.concat(frames, ignore_index=True)
    twice = frame.duplicated(["run_id", "metric"], keep="last")
    for (rid, dropped), rows in frame[twice].groupby(["run_id", "_file"]):
        kept = frame[~twice & (frame.run_id == rid)]._file.iloc[0]
        tqdm.write(f"dropping {len(rows)} rows of run {rid} from {dropped}: kept those of {kept}")
    frame = frame[~twice].drop(columns="_file").reset_index(drop=True)
    if len(mixed := devices(frame)) > 1:
        tqdm.write(f"{Path(root).name}: runs on {len(mixed)} devices, {describe(mixed)}")
    return frame


def devices(frame: pd.DataFrame) -> dict[str, int]:
    """{device: number of runs} of a records frame. One config run on two devices (another
    thread count included: `app.device`) agrees to rounding, not bit for bit, so a sweep that
    mixes them (resumed under another launcher) is said, not silent."""
    runs = frame.drop_duplicates("run_id")
    return runs.device.fillna("unknown").value_counts().to_dict()


def describe(counts: dict[str, int]) -> str:
    return "; ".join(f"{n} run{'s' if n > 1 else ''} on {dev}" for dev, n in counts.items())


def failures(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of failed runs (non-finite values, an exception, a timeout) of a records frame."""
    return frame[frame.status.astype(str).str.startswith(FAILED)]
