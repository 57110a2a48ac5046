"""Returns table: every shipped config trained with many seeds, then judged by greedy evaluation.

For each environment: ``jax.jit(jax.vmap(make_train(config)))(keys)`` trains all seeds in one compiled program; the
final states are then evaluated greedily (``jax.vmap`` of `purejaxppo.evaluate` over the seeds, `--episodes` episodes
each, on evaluation keys that training never used). Per environment it reports the IQM over seeds of each seed's mean
evaluation return (interquartile mean, Agarwal et al. 2021, arXiv 2108.13264), the mean, a 95% percentile-bootstrap
confidence interval of the IQM (seeds resampled with replacement), the budget, wall time and device.

    python benchmarks/returns.py                                   # classic control + bsuite rows, 8 seeds
    python benchmarks/returns.py --envs CartPole-v1,Catch-bsuite --seeds 16
    python benchmarks/returns.py --envs Breakout-MinAtar --budget-scale 0.05     # a clearly-labelled reduced budget
    python benchmarks/returns.py --envs CartPole-v1 --budget-scale 0.01 --out /tmp/smoke
    python benchmarks/returns.py --envs Asterix-MinAtar --estimate  # "not run" row: time 3 updates, extrapolate

Writes ``<out>/returns-<device>.json`` (every row with its per-seed values and a down-sampled learning curve),
``returns-<device>.md`` (the table) and ``returns-<device>.png`` (learning curves: the mean training episode return
over seeds with a 95% bootstrap band of that mean, one panel per environment). Rows *merge*: running a subset of
environments replaces those rows and keeps the others, so environments can be run one at a time.
A row run below its target budget (`--budget-scale` < 1) is labelled "reduced budget" and not judged against the target.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import warnings
from pathlib import Path
from typing import NamedTuple

import jax
import numpy as np

from purejaxppo import evaluate, make_train
from purejaxppo.config import HYPERPARAMETERS, PPOConfig
from purejaxppo.configs import load_config
from purejaxppo.runs.plotting import bootstrap_ci, iqm, smooth

RESULTS = Path(__file__).parent / "results"
NUM_BOOTSTRAP = 2000
CURVE_POINTS = 200  # learning curves are down-sampled to at most this many points in the JSON
EVAL_STREAM = 0xE7A1  # evaluation keys: fold_in(key(seed), EVAL_STREAM), independent of every training stream


class Target(NamedTuple):
    """A benchmark target: train for `budget` env steps, reach a greedy-evaluation IQM >= `threshold`."""

    budget: int
    threshold: float


# Targets from ../shared/REFERENCE.md ("our target, IQM over 8+ seeds, greedy evaluation").
TARGETS: dict[str, Target] = {
    "CartPole-v1": Target(500_000, 500.0),
    "Acrobot-v1": Target(500_000, -80.0),
    "MountainCar-v0": Target(1_000_000, -120.0),
    "Pendulum-v1": Target(1_000_000, -170.0),
    "MountainCarContinuous-v0": Target(1_000_000, 90.0),
    "Catch-bsuite": Target(100_000, 1.0),
    "Breakout-MinAtar": Target(10_000_000, 45.0),
    "Asterix-MinAtar": Target(10_000_000, 20.0),
    "Freeway-MinAtar": Target(10_000_000, 60.0),
    "SpaceInvaders-MinAtar": Target(10_000_000, 180.0),
}
CPU_ENVS = ("CartPole-v1", "Catch-bsuite", "Acrobot-v1", "Pendulum-v1", "MountainCar-v0", "MountainCarContinuous-v0")


class Summary(NamedTuple):
    """Statistics over seeds of the per-seed mean evaluation returns."""

    iqm: float
    mean: float
    ci_low: float  # 95% percentile-bootstrap interval of the IQM
    ci_high: float


class Timing(NamedTuple):
    compile_s: float
    train_s: float
    eval_s: float

    @property
    def total_s(self) -> float:
        return self.compile_s + self.train_s + self.eval_s


# ---------------------------------------------------------------------------------------------------- statistics
def bootstrap_iqm_ci(values: np.ndarray, num_samples: int = NUM_BOOTSTRAP, level: float = 0.95, seed: int = 0
                     ) -> tuple[float, float]:
    """Percentile-bootstrap interval of the IQM of ``values [S]`` (seeds resampled with replacement)."""
    values = np.asarray(values, np.float64)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"bootstrap_iqm_ci needs a non-empty 1-d array of per-seed values, got shape {values.shape}")
    rng = np.random.default_rng(seed)
    resampled = values[rng.integers(0, values.size, size=(num_samples, values.size))]  # [B, S]
    stats = iqm(resampled, axis=1)  # [B]
    tail = (1.0 - level) / 2
    return float(np.quantile(stats, tail)), float(np.quantile(stats, 1.0 - tail))


def summarise(seed_means: np.ndarray) -> Summary:
    """IQM, mean and the IQM's 95% bootstrap interval of ``seed_means [S]``."""
    low, high = bootstrap_iqm_ci(seed_means)
    return Summary(float(iqm(seed_means)), float(np.mean(seed_means)), low, high)


def nan_mean(values: np.ndarray, axis: int | None = None):
    """`np.nanmean` without the all-NaN warning (NaN where no seed finished an episode).

    With axis None: a float, or None when there is no finite value."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        out = np.nanmean(np.asarray(values, np.float64), axis=axis)
    if axis is None:
        return float(out) if np.isfinite(out) else None  # JSON has no NaN
    return out


# ----------------------------------------------------------------------------------------------------- training
def scaled_config(env_name: str, budget_scale: float, overrides: dict | None = None) -> PPOConfig:
    """The shipped config for `env_name` with `overrides` (field -> value) applied and its budget multiplied by
    `budget_scale` (at least one update)."""
    config = load_config(env_name)
    if overrides:
        config = PPOConfig.from_dict({**config.to_dict(), **overrides})
    total = max(round(config.total_timesteps * budget_scale), config.batch_size)
    return config.replace(total_timesteps=total)


def overrides_of(config: PPOConfig, env_name: str) -> dict:
    """The fields of `config` that differ from `env_name`'s shipped config (the budget aside: see budget_scale)."""
    shipped = load_config(env_name).to_dict()
    return {k: v for k, v in config.to_dict().items() if k != "total_timesteps" and shipped.get(k) != v}


def setting_label(row: dict) -> str:
    """``"learning_rate=0.005"`` for a row that overrides the shipped config, "" for the shipped config."""
    return ", ".join(f"{k}={v}" for k, v in row.get("overrides", {}).items())


def parse_overrides(items: list[str]) -> dict:
    """``["learning_rate=5e-3", "hidden_sizes=[64, 64]"]`` -> {field: value}; values are JSON (else strings)."""
    overrides = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set takes FIELD=VALUE, got {item!r}")
        try:
            overrides[key.strip()] = json.loads(text)
        except json.JSONDecodeError:
            overrides[key.strip()] = text
    return overrides


def train_seeds(config: PPOConfig, num_seeds: int, seed: int, grid: list[PPOConfig] | None = None
                ) -> tuple[object, dict[str, np.ndarray], Timing]:
    """Train `num_seeds` seeds in one vmapped program. Returns (final states [S], metrics [S, U], timing).

    With `grid` (configs that differ from `config` in float fields only), every setting trains the same seeds in the
    same program: states and metrics then have a leading [G] axis."""
    keys = jax.random.split(jax.random.key(seed), num_seeds)
    train = make_train(config)
    if grid is None:
        program, args = jax.jit(jax.vmap(train)), (keys,)
    else:
        stacked = jax.tree.map(lambda *leaves: jax.numpy.stack(leaves), *grid)
        program, args = jax.jit(jax.vmap(jax.vmap(train, in_axes=(0, None)), in_axes=(None, 0))), (keys, stacked)
    t0 = time.perf_counter()
    compiled = program.lower(*args).compile()
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = jax.block_until_ready(compiled(*args))
    train_s = time.perf_counter() - t0
    return out.state, jax.device_get(out.metrics), Timing(compile_s, train_s, 0.0)


def evaluate_seeds(config: PPOConfig, states, num_episodes: int, seed: int) -> np.ndarray:
    """Greedy evaluation of every seed's final state: returns ``[S, num_episodes]``."""
    num_seeds = jax.tree.leaves(states.updates_done)[0].shape[0]
    keys = jax.random.split(jax.random.fold_in(jax.random.key(seed), EVAL_STREAM), num_seeds)
    play = jax.jit(jax.vmap(lambda state, key: evaluate(config, state, key, num_episodes=num_episodes)))
    return np.asarray(jax.device_get(play(states, keys)), np.float64)


def learning_curve(metrics: dict[str, np.ndarray], window: int) -> dict[str, list]:
    """Mean training episode return over seeds with a 95% bootstrap band, down-sampled to <= CURVE_POINTS points."""
    returns = smooth(np.asarray(metrics["episode_return"], np.float64), window)  # [S, U]
    steps = np.asarray(metrics["env_steps"])[0]  # [U], identical for every seed
    mean = nan_mean(returns, axis=0)
    low, high = bootstrap_ci(returns)
    idx = np.unique(np.linspace(0, steps.size - 1, min(CURVE_POINTS, steps.size)).round().astype(int))
    as_list = lambda a: [None if not np.isfinite(v) else float(v) for v in a[idx]]  # noqa: E731
    return {"env_steps": [int(s) for s in steps[idx]], "mean": as_list(mean), "low": as_list(low),
            "high": as_list(high)}


def run_env(env_name: str, num_seeds: int, num_episodes: int, budget_scale: float, seed: int,
            overrides: dict | None = None, grid: tuple[str, list[float]] | None = None) -> list[dict]:
    """Train and evaluate one environment's shipped config (with `overrides`); the JSON rows of the results file.

    One row, or with ``grid=(field, values)`` one row per value, all trained in one program on the same seeds."""
    config = scaled_config(env_name, budget_scale, overrides)
    if grid is None:
        states, metrics, timing = train_seeds(config, num_seeds, seed)
        settings = [(config, states, metrics)]
    else:
        field, values = grid
        configs = [config.replace(**{field: value}) for value in values]
        states, metrics, timing = train_seeds(config, num_seeds, seed, grid=configs)
        settings = [(cfg, jax.tree.map(lambda x, i=i: x[i], states), {k: v[i] for k, v in metrics.items()})
                    for i, cfg in enumerate(configs)]
    rows = []
    for cfg, cfg_states, cfg_metrics in settings:
        t0 = time.perf_counter()
        eval_returns = evaluate_seeds(cfg, cfg_states, num_episodes, seed)  # [S, E]
        cfg_timing = timing._replace(eval_s=time.perf_counter() - t0)
        rows.append(result_row(env_name, cfg, eval_returns, cfg_metrics, cfg_timing, len(settings), budget_scale,
                               num_episodes))
    return rows


def result_row(env_name: str, config: PPOConfig, eval_returns: np.ndarray, metrics: dict[str, np.ndarray],
               timing: Timing, num_settings: int, budget_scale: float, num_episodes: int) -> dict:
    """The JSON row of one trained setting: ``eval_returns [S, E]``, ``metrics {name: [S, U]}``."""
    num_seeds = eval_returns.shape[0]
    seed_means = eval_returns.mean(axis=1)
    summary = summarise(seed_means)
    target = TARGETS.get(env_name)
    # without a target, the budget to reach is the shipped config's own (a --budget-scale below 1 falls short of it)
    full_budget = budget_scale >= 1 if target is None else config.total_timesteps >= target.budget
    met = None if target is None or not full_budget else bool(summary.iqm >= target.threshold - 1e-6)
    return {
        "env_name": env_name,
        "num_seeds": num_seeds,
        "eval_episodes_per_seed": num_episodes,
        "total_timesteps": config.total_timesteps,
        "timesteps_trained": config.timesteps_trained,
        "budget_scale": budget_scale,
        "overrides": overrides_of(config, env_name),
        "settings_in_program": num_settings,  # >1: trained beside other settings (--grid); timing is the program's
        "target_budget": None if target is None else target.budget,
        "target": None if target is None else target.threshold,
        "full_budget": full_budget,
        "target_met": met,
        **summary._asdict(),
        "seed_means": [float(v) for v in seed_means],
        "final_train_return_mean": nan_mean(metrics["episode_return"][:, -max(1, config.num_updates // 20):]),
        **{k: round(v, 2) for k, v in timing._asdict().items()},
        "total_s": round(timing.total_s, 2),
        "steps_per_second": round(num_settings * num_seeds * config.timesteps_trained / timing.train_s),
        "config": config.to_dict(),
        "curve": learning_curve(metrics, window=max(1, config.num_updates // 50)),
    }


def estimate_env(env_name: str, num_seeds: int, seed: int, updates: int = 3) -> dict:
    """A row for an environment *not run*: time `updates` updates of `num_seeds` seeds (after compiling) and
    extrapolate to the target budget (or the config's budget) on this device."""
    full = load_config(env_name)
    config = full.replace(total_timesteps=updates * full.batch_size)
    _, _, timing = train_seeds(config, num_seeds, seed)
    steps_per_second = num_seeds * config.timesteps_trained / timing.train_s
    target = TARGETS.get(env_name)
    budget = full.total_timesteps if target is None else target.budget
    return {
        "env_name": env_name,
        "not_run": True,
        "num_seeds": num_seeds,
        "measured_updates": updates,
        "target_budget": None if target is None else target.budget,
        "target": None if target is None else target.threshold,
        "compile_s": round(timing.compile_s, 2),
        "steps_per_second": round(steps_per_second),
        "estimated_hours": round(num_seeds * budget / steps_per_second / 3600, 2),
        "estimated_budget": budget,
        "config": full.to_dict(),
    }


# -------------------------------------------------------------------------------------------------------- output
def device_name() -> str:
    """e.g. ``cpu-2core`` or the accelerator's kind (``NVIDIA-H100-80GB-HBM3``)."""
    d = jax.devices()[0]
    if d.platform == "cpu":
        return f"cpu-{os.cpu_count()}core"
    return d.device_kind.replace(" ", "-")


def _fmt(x: float) -> str:
    return f"{x:.2f}" if abs(x) < 10 else f"{x:.1f}"


def _steps(n: int) -> str:
    return f"{n:.0e}".replace("e+0", "e") if n % 10 ** (len(str(n)) - 1) == 0 else f"{n:,}"


def status(row: dict) -> str:
    if row.get("not_run"):
        seeds = f"{row['num_seeds']} seed{'s' if row['num_seeds'] > 1 else ''}"
        return (f"not run: needs a GPU (est. {row['estimated_hours']:.1f} h for {seeds} x "
                f"{_steps(row['estimated_budget'])} steps on this device)")
    if row["target"] is None:
        if row["full_budget"]:
            return "no target"
        shipped = round(row["total_timesteps"] / row["budget_scale"])
        return f"reduced budget ({_steps(row['timesteps_trained'])} of the config's {_steps(shipped)}), no target"
    if not row["full_budget"]:
        return f"reduced budget ({_steps(row['timesteps_trained'])} of {_steps(row['target_budget'])}): not judged"
    return "**yes**" if row["target_met"] else "no"


def markdown_table(rows: list[dict], device: str) -> str:
    """The returns table in Markdown, one row per environment."""
    lines = [
        (f"Greedy-evaluation returns of the shipped configs (`purejaxppo/configs/*.toml`), device `{device}`. "
         "IQM and mean over seeds of each seed's mean return over its evaluation episodes; the interval is a 95% "
         "percentile bootstrap of the IQM over seeds. Wall time = compile + train (all seeds in one vmapped "
         "program) + evaluation."),
        "",
        ("| environment | steps trained | seeds x eval episodes | IQM [95% CI] | mean | target (IQM) | reached | "
         "wall time (s) | env steps/s (all seeds) |"),
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        target = "-" if r["target"] is None else f">= {_fmt(r['target'])} at {_steps(r['target_budget'])}"
        if r.get("not_run"):
            lines.append(f"| {r['env_name']} | - | - | - | - | {target} | {status(r)} | - | "
                         f"{r['steps_per_second']:,} (measured over {r['measured_updates']} updates) |")
            continue
        name = f"{r['env_name']} ({setting_label(r)})" if setting_label(r) else r["env_name"]
        lines.append(
            f"| {name} | {r['timesteps_trained']:,} | {r['num_seeds']} x {r['eval_episodes_per_seed']} | "
            f"{_fmt(r['iqm'])} [{_fmt(r['ci_low'])}, {_fmt(r['ci_high'])}] | {_fmt(r['mean'])} | {target} | "
            f"{status(r)} | {r['total_s']:.0f} ({r['compile_s']:.0f} compile) | {r['steps_per_second']:,} |"
        )
    if any(r.get("overrides") or r.get("settings_in_program", 1) > 1 for r in rows):
        lines += ["", ("Rows named with a setting (e.g. `learning_rate=0.0005`) override the shipped config. Settings "
                       "trained beside each other (`--grid`) share one program on the same seeds: their wall time and "
                       "env steps/s are the whole program's.")]
    return "\n".join(lines) + "\n"


def plot_curves(rows: list[dict], out: Path) -> Path:
    """One panel per environment: mean training episode return over seeds, shaded 95% bootstrap band; one line per
    setting (the shipped config and any --set/--grid variants)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_env: dict[str, list[dict]] = {}
    for r in rows:
        if not r.get("not_run"):
            by_env.setdefault(r["env_name"], []).append(r)
    if not by_env:
        return out
    cols = min(3, len(by_env))
    nrows = -(-len(by_env) // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols, 3.2 * nrows), squeeze=False)
    try:
        for ax, (env_name, env_rows) in zip(axes.flat, by_env.items()):
            for i, r in enumerate(env_rows):
                c = {k: np.array([np.nan if v is None else v for v in values], np.float64)
                     for k, values in r["curve"].items()}
                label = f"{setting_label(r) or 'shipped config'} ({r['num_seeds']} seeds)"
                ax.plot(c["env_steps"], c["mean"], color=f"C{i}", lw=1.5, label=label)
                ax.fill_between(c["env_steps"], c["low"], c["high"], color=f"C{i}", alpha=0.25, lw=0)
            if not any(np.isfinite(np.array([np.nan if v is None else v for v in r["curve"]["mean"]], float)).any()
                       for r in env_rows):
                ax.text(0.5, 0.5, "no training episode ended within the budget\n(greedy evaluation: see the table)",
                        ha="center", va="center", transform=ax.transAxes, fontsize=8)
            first = env_rows[0]
            if first["target"] is not None:
                ax.axhline(first["target"], color="C3", ls="--", lw=1, label="target")
            reduced = "" if all(r["full_budget"] for r in env_rows) else " (reduced budget)"
            ax.set_title(f"{env_name}{reduced}", fontsize=9)
            ax.set_xlabel("environment steps", fontsize=8)
            ax.set_ylabel("training episode return", fontsize=8)
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7, loc="lower right")
        for ax in list(axes.flat)[len(by_env):]:
            ax.axis("off")
        fig.suptitle("Learning curves (shaded: 95% bootstrap CI of the mean over seeds)", fontsize=10)
        fig.tight_layout()
        fig.savefig(out, dpi=110, format="png")
    finally:
        plt.close(fig)
    return out


def row_key(row: dict) -> tuple[str, str]:
    """A row's identity: its environment and its overrides of the shipped config."""
    return row["env_name"], json.dumps(row.get("overrides", {}), sort_keys=True)


def merge_rows(old: list[dict], new: list[dict]) -> list[dict]:
    """`old` with the rows of `new`'s (environment, overrides) replaced; ordered as TARGETS, unknown environments
    last, the shipped config before its variants."""
    by_key = {row_key(r): r for r in old} | {row_key(r): r for r in new}
    order = {name: i for i, name in enumerate(TARGETS)}
    return sorted(by_key.values(), key=lambda r: (order.get(r["env_name"], len(order)), r["env_name"],
                                                  bool(r.get("overrides")), row_key(r)[1]))


def write_results(rows: list[dict], out_dir: Path, device: str) -> dict[str, Path]:
    """Merge `rows` into ``<out_dir>/returns-<device>.json`` and rewrite the table and the plot from all rows."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = out_dir / f"returns-{device}"
    json_path, md_path, png_path = stem.with_suffix(".json"), stem.with_suffix(".md"), stem.with_suffix(".png")
    old = json.loads(json_path.read_text())["rows"] if json_path.is_file() else []
    rows = merge_rows(old, rows)
    meta = {"device": device, "jax": jax.__version__, "platform": platform.platform(),
            "python": platform.python_version()}
    json_path.write_text(json.dumps({**meta, "rows": rows}, indent=1) + "\n")
    md_path.write_text(markdown_table(rows, device))
    plot_curves(rows, png_path)
    return {"json": json_path, "md": md_path, "png": png_path}


# ----------------------------------------------------------------------------------------------------------- CLI
def parse_grid(text: str) -> tuple[str, list[float]]:
    """``"learning_rate=5e-4,5e-3"`` -> ("learning_rate", [5e-4, 5e-3])."""
    field, sep, values = text.partition("=")
    try:
        numbers = [float(v) for v in values.split(",") if v.strip()]
    except ValueError:
        numbers = []
    if not sep or not field.strip() or not numbers:
        raise ValueError(f"--grid takes FIELD=V1,V2,... with float values, got {text!r}")
    return field.strip(), numbers


def parse_envs(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise ValueError("--envs needs at least one environment name")
    for name in names:
        load_config(name)  # a clear ValueError for an unknown environment
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", default=",".join(CPU_ENVS),
                        help=f"comma-separated environment ids (default: {','.join(CPU_ENVS)}); targets exist for "
                             f"{', '.join(TARGETS)}")
    parser.add_argument("--seeds", type=int, default=8, help="seeds per environment, trained in one program")
    parser.add_argument("--episodes", type=int, default=32, help="greedy evaluation episodes per seed")
    parser.add_argument("--budget-scale", type=float, default=1.0, help="multiply every budget (smoke runs)")
    parser.add_argument("--seed", type=int, default=0, help="base seed")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a field of the shipped configs (repeatable; the value is JSON), e.g. "
                             "--set learning_rate=5e-3; the table names the overrides")
    parser.add_argument("--grid", default=None, metavar="FIELD=V1,V2,...",
                        help="also train these values of one float field, beside each other in the same program "
                             "on the same seeds (one row each), e.g. --grid learning_rate=5e-4,5e-3")
    parser.add_argument("--out", type=Path, default=RESULTS, help="output directory")
    parser.add_argument("--estimate", action="store_true",
                        help="do not train the --envs: time 3 updates of --seeds seeds and record a 'not run' row with "
                             "the estimated time of the full budget on this device")
    args = parser.parse_args(argv)
    if args.seeds < 1 or args.episodes < 1 or args.budget_scale <= 0:
        parser.error("--seeds and --episodes must be >= 1 and --budget-scale > 0")
    try:
        envs = parse_envs(args.envs)
        overrides = parse_overrides(args.set)
        grid = parse_grid(args.grid) if args.grid else None
        if grid is not None and grid[0] not in HYPERPARAMETERS:  # not a field that sets array shapes
            raise ValueError(f"--grid needs a float hyperparameter ({', '.join(HYPERPARAMETERS)}), got {grid[0]!r}: "
                             f"other fields set array shapes, so each value needs a program of its own (use --set)")
        for env_name in envs:
            config = scaled_config(env_name, args.budget_scale, overrides)  # a clear error for a bad field, now
            if grid is not None:
                for value in grid[1]:
                    PPOConfig.from_dict({**config.to_dict(), grid[0]: value})
    except ValueError as e:
        parser.error(str(e))
    device = device_name()
    rows = []
    for env_name in envs:
        if args.estimate:
            row = estimate_env(env_name, args.seeds, args.seed)
            print(f"{env_name}: {row['steps_per_second']:,} steps/s with {args.seeds} seeds ({row['compile_s']:.0f} s "
                  f"compile): {status(row)}", flush=True)
            paths = write_results([row], args.out, device)
            continue
        env_rows = run_env(env_name, args.seeds, args.episodes, args.budget_scale, args.seed, overrides, grid)
        rows += env_rows
        for row in env_rows:
            print(f"{env_name}{f' ({setting_label(row)})' if setting_label(row) else ''}: IQM {row['iqm']:.2f} [{row['ci_low']:.2f}, "
                  f"{row['ci_high']:.2f}], mean {row['mean']:.2f}, {row['timesteps_trained']:,} steps x "
                  f"{args.seeds} seeds, {row['total_s']:.1f} s ({row['compile_s']:.1f} compile) on {device}: "
                  f"{status(row)}", flush=True)
        paths = write_results(env_rows, args.out, device)  # after every env, so a long run keeps what it finished
    print("\n".join(f"wrote {p}" for p in paths.values()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
