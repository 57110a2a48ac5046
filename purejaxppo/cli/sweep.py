"""``purejaxppo sweep``: a grid (or list) of float hyperparameter settings x seeds in one compiled program
(`purejaxppo.scale.sweeps.sweep`), then a run directory per setting, a ranked table and one plot of every curve.

    purejaxppo sweep --env CartPole-v1 --grid learning_rate=1e-4,3e-4,1e-3 --grid entropy_coeff=0,0.01 --num-seeds 4

Only float hyperparameters (`config.HYPERPARAMETERS`) can be swept: every cell is then the same program with other
numbers. A field that sets shapes or the program's structure (num_envs, network, ...) would need a program per
value: it is refused, naming the field (run one sweep per value). On a CPU the cells are split over one device per
core (``jax_num_cpu_devices``, set before the backend starts). The whole sweep is one call of one program; a host
callback after each update moves a progress bar (`sweep`'s ``progress``), so this program is compiled every time
(JAX keeps no program with callbacks in its persistent cache).
"""

from __future__ import annotations

import math
import os
import threading
import time
import tomllib
from pathlib import Path
from typing import Any

from purejaxppo.cli.args import Sweep, UsageError, check_positive, check_seed
from purejaxppo.cli.plans import check_new_run_dir, default_run_dir, requested_config

DEFAULT_SEEDS = 2
T_95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
        15: 2.131, 20: 2.086, 30: 2.042}  # Student's t, two-sided 95%, by degrees of freedom (larger: 1.96)


def sweep_command(cmd: Sweep) -> int:
    """Check everything, train every cell in one program, write the run directories, the table and the plot."""
    check_positive(cmd, "num-seeds")
    check_seed(cmd.seed)
    use_cpu_cores()  # before anything starts jax's backend
    config = requested_config(cmd)
    settings = read_settings(cmd, config)
    seeds = cmd.num_seeds or DEFAULT_SEEDS
    logdir = Path(cmd.logdir) if cmd.logdir is not None else default_run_dir(f"{config.env_name}-sweep")
    from purejaxppo.scale.processes import is_writer
    from purejaxppo.scale.sweeps import sweep

    writer = is_writer()  # with several processes (--coordinator-address, --distributed) only process 0 writes
    if writer:
        check_new_run_dir(logdir, resumable=False)
    quiet = cmd.quiet or not writer
    say = (lambda *a: None) if quiet else (lambda *a: print(*a, flush=True))

    say(f"Sweeping {config.env_name}: {len(settings)} setting(s) x {seeds} seed(s) = {len(settings) * seeds} cells "
        f"on {describe_devices()}, {config.timesteps_trained:,} steps each -> {logdir}")
    say("compiling (one program for every cell)...")
    t0 = time.time()
    with UpdateBar(config.num_updates, f"{config.env_name} sweep x{len(settings) * seeds}", quiet) as bar:
        result = sweep(config, seeds, seed=cmd.seed or 0, settings=settings, keep_state=True, progress=bar)
    seconds = time.time() - t0
    if not writer:
        return 0
    rows = write_sweep(logdir, result, seconds)
    print(ranked_table(rows, config.env_name, seeds), flush=True)
    say(f"{len(rows)} settings in {seconds:.1f} s; run directories, summary.md, summary.json and curves.png in "
        f"{logdir}")
    return 0


class UpdateBar:
    """A progress bar over the sweep's updates, moved by `sweep`'s ``progress(u)`` calls (once per device and update,
    from the program's host callbacks: the bar follows the furthest device). It opens at the first update, so the
    compile does not distort the rate and the ETA."""

    def __init__(self, num_updates: int, desc: str, quiet: bool):
        from purejaxppo.runs.progress import progress_enabled

        self.options = {"total": num_updates, "desc": desc, "unit": " updates", "dynamic_ncols": True, "leave": True,
                        "disable": not progress_enabled(quiet)}
        self.bar, self.shown, self.lock = None, 0, threading.Lock()

    def __call__(self, update: int) -> None:
        from tqdm.auto import tqdm

        with self.lock:
            if self.bar is None:
                self.bar = tqdm(**self.options)
            if update > self.shown:
                self.bar.update(update - self.shown)
                self.shown = update

    def __enter__(self) -> UpdateBar:
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()


def read_settings(cmd: Sweep, config) -> list[dict[str, float]]:
    """The settings `cmd` asks for (a grid's Cartesian product, or the list file's), every name and value checked."""
    import itertools

    if (cmd.grid is None) == (cmd.list_file is None):
        raise UsageError("give the settings with --grid NAME=A,B,... (repeatable) or --list FILE.toml (one of them)")
    if cmd.grid is not None:
        if not cmd.grid:
            raise UsageError("--grid needs at least one NAME=A,B,..., e.g. --grid learning_rate=1e-4,3e-4")
        grid: dict[str, list[float]] = {}
        for item in cmd.grid:
            name, sep, spec = item.partition("=")
            name = check_name(name.strip().replace("-", "_"), f"--grid {item!r}")
            if name in grid:
                raise UsageError(f"--grid gives {name} twice; give each hyperparameter once")
            if not sep or not spec.strip():
                raise UsageError(f"--grid {item!r}: expected NAME=A,B,... with numbers, e.g. learning_rate=1e-4,3e-4")
            grid[name] = [number(name, v, f"--grid {item!r}") for v in spec.split(",")]
        settings = [dict(zip(grid, values)) for values in itertools.product(*grid.values())]
    else:
        path = Path(cmd.list_file)
        try:
            document = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise UsageError(f"--list {path}: {getattr(e, 'strerror', None) or e}") from None
        unknown = sorted(set(document) - {"setting"})
        if unknown:
            raise UsageError(f"--list {path}: unknown top-level key(s) {unknown}; the file holds only [[setting]] "
                             "tables (give the base config with --config-file, the seeds with --num-seeds)")
        tables = document.get("setting")
        if not isinstance(tables, list) or not tables or not all(isinstance(t, dict) and t for t in tables):
            raise UsageError(f"--list {path}: expected [[setting]] tables of NAME = value, e.g.\n[[setting]]\n"
                             "learning_rate = 3e-4")
        settings = [{check_name(k.replace("-", "_"), f"--list {path}"): number(k, v, f"--list {path}")
                     for k, v in t.items()} for t in tables]
    for setting in settings:  # the values PPOConfig itself refuses (a negative learning rate, ...), named
        try:
            config.replace(**setting)
        except ValueError as e:
            raise UsageError(f"setting {setting}: {e}") from None
    return settings


def check_name(name: str, where: str) -> str:
    """`name` if it is a float hyperparameter; else a one-line error saying why it cannot be swept."""
    from purejaxppo.config import HYPERPARAMETERS, field_names

    if name in HYPERPARAMETERS:
        return name
    if name in field_names():
        raise UsageError(f"{where}: {name} is not a float hyperparameter; it sets shapes or the program's structure, "
                         "so each value needs its own program: run one sweep per value. Sweepable: "
                         f"{', '.join(HYPERPARAMETERS)}")
    raise UsageError(f"{where}: unknown field {name!r}; sweepable: {', '.join(HYPERPARAMETERS)}")


def number(name: str, value: Any, where: str) -> float:
    try:
        if isinstance(value, bool):
            raise ValueError
        return float(value)
    except (TypeError, ValueError):
        raise UsageError(f"{where}: {name} = {value!r} is not a number") from None


def use_cpu_cores() -> None:
    """One CPU device per core when the backend has not started yet (the cells are split over them); a backend
    already running (a Python caller of main, the tests) keeps its devices."""
    import jax

    from jax._src import xla_bridge

    if not xla_bridge.backends_are_initialized():
        jax.config.update("jax_num_cpu_devices", os.cpu_count() or 1)


def describe_devices() -> str:
    """The devices the sweep's cells are split over, e.g. ``"2 cpu device(s)"`` (starts the backend)."""
    import jax

    devices = jax.devices()
    return f"{len(devices)} {devices[0].platform} device(s)"


def setting_name(index: int, setting: dict[str, float]) -> str:
    """A run directory's name: ``03-learning_rate=0.0003-entropy_coeff=0.01``."""
    return f"{index:02d}-" + "-".join(f"{k}={v:g}" for k, v in setting.items())


def mean_ci(values) -> tuple[float | None, float | None, float | None]:
    """Mean and Student-t 95% interval over seeds (None where no seed has a value; no interval for one seed)."""
    import numpy as np

    finite = np.asarray(values, np.float64)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return None, None, None
    mean = float(finite.mean())
    if finite.size < 2:
        return mean, None, None
    dof = finite.size - 1
    t = next((T_95[d] for d in sorted(T_95) if d >= dof), 1.96)
    half = t * float(finite.std(ddof=1)) / math.sqrt(finite.size)
    return mean, mean - half, mean + half


def write_sweep(logdir: Path, result, seconds: float) -> list[dict[str, Any]]:
    """A run directory per setting (`save_run`), summary.json and summary.md ranked by final return, curves.png."""
    import jax
    import numpy as np

    from purejaxppo.runs.logs import FINAL_WINDOW, final_returns, write_json
    from purejaxppo.runs.plotting import plot_runs
    from purejaxppo.runs.policy import save_run

    num_seeds = len(result.coords["seed"])
    flat = lambda x: x.reshape((-1, num_seeds, *x.shape[len(result.setting_shape) + 1:]))  # noqa: E731
    metrics = {k: flat(v) for k, v in result.metrics.items()}
    states = jax.tree.map(flat, result.state)
    rows = []
    for i, setting in enumerate(result.settings):
        run_dir = logdir / setting_name(i, setting)
        config = result.config_at(i)
        save_run(run_dir, config, jax.tree.map(lambda x: x[i], states), seed=result.seed, num_seeds=num_seeds,
                 metrics={k: v[i] for k, v in metrics.items()})
        finals = final_returns(np.asarray(metrics["episode_return"][i], np.float64))
        mean, low, high = mean_ci(finals)
        row = {"setting": setting, "run_dir": run_dir.name, "final_return": mean, "ci95": [low, high],
               "per_seed": [None if not np.isfinite(v) else float(v) for v in finals]}
        write_json(run_dir / "summary.json", {
            "env_name": config.env_name, "num_seeds": num_seeds, "seed": result.seed, "setting": setting,
            "updates": config.num_updates, "env_steps_per_seed": config.timesteps_trained,
            "final_episode_return": {"window_updates": FINAL_WINDOW, "mean": mean, "ci95": [low, high],
                                     "per_seed": row["per_seed"]}})
        rows.append(row)
    rows.sort(key=lambda r: -np.inf if r["final_return"] is None else -r["final_return"])
    if rows and rows[0]["final_return"] is not None:
        rows[0]["best"] = True
    write_json(logdir / "summary.json", {"env_name": result.config.env_name, "num_seeds": num_seeds,
                                         "seed": result.seed, "window_updates": FINAL_WINDOW,
                                         "seconds": round(seconds, 3), "ranked": rows})
    (logdir / "summary.md").write_text(ranked_table(rows, result.config.env_name, num_seeds) + "\n")
    labels = [f"#{rank} " + ", ".join(f"{k}={v:g}" for k, v in r["setting"].items()) for rank, r in enumerate(rows, 1)]
    plot_runs([logdir / r["run_dir"] for r in rows], logdir / "curves.png", labels=labels,
              title=f"{result.config.env_name}: {len(rows)} settings x {num_seeds} seeds (mean and 95% interval)")
    return rows


def ranked_table(rows: list[dict[str, Any]], env_name: str, num_seeds: int) -> str:
    """The settings best first: final return (mean over seeds of each seed's last 10 updates) and its 95% interval."""
    def fmt(x):
        return "-" if x is None else f"{x:.2f}"

    names = list(dict.fromkeys(k for r in rows for k in r["setting"]))
    lines = [f"# Sweep of {env_name}: {len(rows)} settings x {num_seeds} seeds", "",
             "Final return: each seed's mean episode return over its last 10 updates, averaged over seeds, with a "
             "Student-t 95% interval over seeds.", "",
             "| rank | " + " | ".join(names) + " | final return | 95% interval | run |",
             "|---|" + "---|" * len(names) + "---|---|---|"]
    for rank, r in enumerate(rows, 1):
        low, high = r["ci95"]
        interval = "-" if low is None else f"[{low:.2f}, {high:.2f}]"
        mark = " **best**" if r.get("best") else ""
        lines.append(f"| {rank}{mark} | " + " | ".join(f"{r['setting'].get(n, '-'):g}" if n in r["setting"] else "-"
                                                      for n in names)
                     + f" | {fmt(r['final_return'])} | {interval} | {r['run_dir']} |")
    return "\n".join(lines)

