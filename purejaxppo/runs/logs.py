"""What a run writes to its directory, and how it is read back.

    <run>/config.json      the resolved PPOConfig (`PPOConfig.to_dict`), written before training starts
    <run>/run.json         the run's layout and options: seeds, base seed, checkpoint interval, versions
    <run>/metrics.jsonl    one JSON object per update and seed, appended (and fsync-ed) after every chunk:
                           {"update": u, "seed": s, "env_steps": ..., "episode_return": ..., <other metrics>}
                           NaN (no episode finished in that update) is written as null
    <run>/summary.json     written when the run stops: final returns (each seed's mean episode return over its last
                           10 updates), steps, and the times of this session (the last `train`/`--resume`):
                             wall_seconds      compile_seconds + train_seconds
                             compile_seconds   compiling the training program (about 0 if this process had
                                               compiled it already)
                             train_seconds     the training loop after compiling: running the updates, writing
                                               metrics, saving checkpoints
                             steps_per_second  environment steps of all seeds in this session / train_seconds
                                               (the progress bar shows it per seed)
    <run>/tensorboard/     with --tensorboard (tensorboardX): the mean over seeds of every metric, per env step
    <run>/wandb/           with --wandb (offline by default; `wandb sync` uploads it later)

A run killed mid-write leaves at most one partial last line in metrics.jsonl; `read_records` ignores it and
`truncate_records` (used on resume) drops it together with every update after the restored checkpoint.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

METRICS_FILE = "metrics.jsonl"
SUMMARY_FILE = "summary.json"
CONFIG_FILE = "config.json"
RUN_FILE = "run.json"
LINEAGE_FILE = "lineage.json"  # a `pbt` run's lineage (purejaxppo pbt)
LINEAGE_PLOT = "lineage.png"
LEADING_KEYS = ("update", "seed", "env_steps", "episode_return")
INT_METRICS = ("update", "env_steps", "episodes_finished", "nonfinite")


# ------------------------------------------------------------------------------------------------------ JSON helpers
def json_scalar(x: Any) -> int | float | bool | None:
    """A JSON-safe Python scalar: numpy values unwrapped, NaN and infinities as None."""
    if isinstance(x, np.generic | np.ndarray):
        x = np.asarray(x).item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def write_json(path: str | Path, obj: Any) -> None:
    """Write `obj` as indented JSON atomically (temporary file, fsync, rename)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2, allow_nan=False)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_json(path: str | Path) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"{path} does not exist") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON: {e}") from None


# ------------------------------------------------------------------------------------------------------- metrics
def metric_records(metrics: Mapping[str, np.ndarray]) -> list[dict[str, Any]]:
    """One record per (update, seed) from ``{name: [n, S]}`` arrays that include "update" (the update number)."""
    updates = np.asarray(metrics["update"])
    n, num_seeds = updates.shape
    names = [k for k in LEADING_KEYS if k in metrics and k != "update"] + sorted(
        k for k in metrics if k not in LEADING_KEYS)
    records = []
    for i in range(n):
        for s in range(num_seeds):
            record: dict[str, Any] = {"update": int(updates[i, s]), "seed": s}
            for name in names:
                value = metrics[name][i, s]
                record[name] = int(value) if name in INT_METRICS else json_scalar(np.float64(value))
            records.append(record)
    return records


class RunWriteError(RuntimeError):
    """A run file could not be written (disk full, read-only file system, ...); the file is as it was before."""


def append_records(path: str | Path, records: Iterable[Mapping[str, Any]]) -> None:
    """Append records as JSON lines and fsync, so a crash after this call loses none of them.

    All or nothing: if the write fails part-way (a full disk), the file is cut back to its previous length and a
    `RunWriteError` names the file and the cause.
    """
    path = Path(path)
    lines = "".join(json.dumps(r, allow_nan=False) + "\n" for r in records).encode()
    size = path.stat().st_size if path.exists() else 0
    try:
        with open(path, "ab") as f:
            f.write(lines)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        with contextlib.suppress(OSError):
            os.truncate(path, size)
        raise RunWriteError(f"writing {path} failed ({e.strerror or e}); the file is left as it was before") from None


def read_records(path: str | Path) -> list[dict[str, Any]]:
    """The records of a metrics.jsonl file. A partial last line (a write cut short by a crash) is ignored; a bad line
    anywhere else raises a ValueError naming it."""
    path = Path(path)
    if not path.exists():
        return []
    lines = path.read_text().split("\n")
    records = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if i == len(lines) - 1:  # no trailing newline: the last write was cut short
                break
            raise ValueError(f"{path}:{i + 1} is not a JSON object: {line[:80]!r}") from None
    return records


def truncate_records(path: str | Path, max_update: int) -> int:
    """Keep only records with ``update <= max_update`` (atomically rewritten); returns how many were kept."""
    path = Path(path)
    kept = [r for r in read_records(path) if r["update"] <= max_update]
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        f.write("".join(json.dumps(r, allow_nan=False) + "\n" for r in kept))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return len(kept)


def curves(records: list[Mapping[str, Any]], metric: str = "episode_return") -> tuple[np.ndarray, np.ndarray]:
    """``(env_steps [U], values [S, U])`` of one metric, NaN where missing (null), updates in order."""
    if not records:
        raise ValueError("no metrics recorded")
    if metric not in records[0]:
        raise ValueError(f"unknown metric {metric!r}; recorded: {sorted(records[0])}")
    updates = sorted({r["update"] for r in records})
    num_seeds = max(r["seed"] for r in records) + 1
    column = {u: i for i, u in enumerate(updates)}
    steps = np.zeros(len(updates), np.int64)
    values = np.full((num_seeds, len(updates)), np.nan)
    for r in records:
        i = column[r["update"]]
        steps[i] = r["env_steps"]
        v = r.get(metric)
        values[r["seed"], i] = np.nan if v is None else v
    return steps, values


FINAL_WINDOW = 10


def final_returns(values: np.ndarray, window: int = FINAL_WINDOW) -> np.ndarray:
    """Each seed's mean over its last `window` finite values in ``values [S, U]`` (one update's episodes are a noisy
    estimate); NaN for a seed that never finished an episode. Shape [S]."""
    out = np.full(values.shape[0], np.nan)
    for s, row in enumerate(values):
        finite = row[np.isfinite(row)]
        if finite.size:
            out[s] = finite[-window:].mean()
    return out


# ------------------------------------------------------------------------------------------------- extra writers
class TensorBoardWriter:
    """Mean over seeds of every metric, and each seed's episode return, against env steps (tensorboardX)."""

    def __init__(self, log_dir: Path, purge_step: int | None = None):
        try:
            from tensorboardX import SummaryWriter
        except ModuleNotFoundError:
            raise ValueError("--tensorboard needs tensorboardX: pip install 'purejaxppo[tensorboard]'") from None
        self.writer = SummaryWriter(str(log_dir), purge_step=purge_step)

    def write(self, metrics: Mapping[str, np.ndarray]) -> None:
        for i in range(len(metrics["update"])):
            step = int(metrics["env_steps"][i].reshape(-1)[0])
            for name, values in metrics.items():
                if name in ("update", "env_steps"):
                    continue
                row = np.asarray(values[i], np.float64)
                if np.isfinite(row).any():
                    self.writer.add_scalar(f"{name}/mean", float(np.nanmean(row)), step)
            for s, r in enumerate(np.asarray(metrics["episode_return"][i], np.float64)):
                if math.isfinite(r):
                    self.writer.add_scalar(f"episode_return/seed_{s}", r, step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class WandbWriter:
    """Weights & Biases: the mean over seeds of every metric, against env steps. Offline mode needs no network."""

    def __init__(self, run_dir: Path, run_id: str, config: Mapping[str, Any], mode: str = "offline",
                 project: str = "purejaxppo", quiet: bool = False):
        try:
            import wandb
        except ModuleNotFoundError:
            raise ValueError("--wandb needs wandb: pip install 'purejaxppo[wandb]'") from None
        self.wandb = wandb
        self.run = wandb.init(project=project, name=run_dir.name, id=run_id, dir=str(run_dir), config=dict(config),
                              mode=mode, resume="allow", settings=wandb.Settings(silent=quiet))

    def write(self, metrics: Mapping[str, np.ndarray]) -> None:
        for i in range(len(metrics["update"])):
            step = int(metrics["env_steps"][i].reshape(-1)[0])
            row = {}
            for name, values in metrics.items():
                v = np.asarray(values[i], np.float64)
                if name != "env_steps" and np.isfinite(v).any():
                    row[name] = float(np.nanmean(v))
            self.run.log(row, step=step)

    def close(self) -> None:
        self.run.finish()


class RunLog:
    """The metrics sinks of one run: metrics.jsonl always, TensorBoard and W&B when asked for.

    `write` takes one chunk's metrics ``{name: [n, S]}`` (with "update") and persists them before returning.
    """

    def __init__(self, run_dir: str | Path, config: Mapping[str, Any], run_id: str, start_env_steps: int = 0,
                 tensorboard: bool = False, wandb: bool = False, wandb_mode: str = "offline", quiet: bool = False):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / METRICS_FILE
        self.extra: list[Any] = []
        if tensorboard:
            self.extra.append(TensorBoardWriter(self.run_dir / "tensorboard", purge_step=start_env_steps or None))
        if wandb:
            self.extra.append(WandbWriter(self.run_dir, run_id, config, wandb_mode, quiet=quiet))

    def write(self, metrics: Mapping[str, np.ndarray]) -> None:
        if not metrics:
            return
        append_records(self.path, metric_records(metrics))
        for writer in self.extra:
            writer.write(metrics)

    def close(self) -> None:
        for writer in self.extra:
            writer.close()
