"""PBT vs a grid sweep at equal total environment steps: P members of `purejaxppo.pbt` against the best cell of a
P-setting learning-rate grid (`purejaxppo.sweep`), both judged by greedy evaluation.

Per environment and per seed k: PBT trains P members from ``key(k)`` (learning rate searched over the grid's range,
exploit/explore every num_updates / segments updates) and keeps its best member by the training return of the last
10 updates; the grid trains its P settings on seed k (``sweep(seed=k)``) and keeps the best setting the same way.
Both spend P x budget environment steps. The kept policy of each is evaluated greedily (`purejaxppo.evaluate`,
--episodes episodes on keys training never used); the table reports the IQM over seeds of those returns with a 95%
percentile-bootstrap interval (seeds resampled), as benchmarks/returns.py does.

    python benchmarks/pbt.py                                         # Pendulum-v1, Acrobot-v1, 8 seeds, P = 4
    python benchmarks/pbt.py --envs Acrobot-v1 --seeds 2 --budget-scale 0.05 --out /tmp/smoke

Writes ``<out>/pbt-<device>.json``, ``pbt-<device>.md`` and ``pbt-lineage-<env>-<device>.png`` (seed 0's lineage; also
``--plot-only <json>``). A budget scale below 1 is labelled "reduced budget".
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

if __name__ == "__main__":  # not on import (tests import this file): the setting would reach their subprocesses
    # one CPU device per core: PBT's members and the grid's cells are split over them (XLA:CPU runs a program on one
    # core)
    os.environ.setdefault("JAX_NUM_CPU_DEVICES", str(os.cpu_count()))
import jax  # noqa: E402
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from returns import bootstrap_iqm_ci, device_name, nan_mean  # noqa: E402

from purejaxppo import evaluate, pbt, sweep  # noqa: E402
from purejaxppo.configs import load_config  # noqa: E402
from purejaxppo.runs.plotting import draw_lineage, iqm, save_png  # noqa: E402

RESULTS = Path(__file__).parent / "results"
GRID = [1e-4, 3e-4, 1e-3, 3e-3]  # P = 4 learning rates; PBT searches (min, max) of these, log-uniform start
EVAL_STREAM = 0xE7A1


def budget_config(env_name: str, budget_scale: float, segments: int):
    """The shipped config with its budget scaled and rounded down to a multiple of `segments` updates."""
    config = load_config(env_name)
    updates = max(segments, int(config.total_timesteps * budget_scale) // config.batch_size // segments * segments)
    return config.replace(total_timesteps=updates * config.batch_size), updates // segments


def last_return(metrics: np.ndarray, last: int = 10) -> np.ndarray:
    """NaN-aware mean of ``[..., U]`` over the last `last` updates (-inf where no episode finished)."""
    out = nan_mean(metrics[..., -last:], axis=-1)
    return np.where(np.isfinite(out), out, -np.inf)


def greedy(config, state, seed: int, episodes: int) -> float:
    key = jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), EVAL_STREAM), 1)
    return float(np.mean(np.asarray(evaluate(config, state, key, num_episodes=episodes))))


def run_env(env_name: str, seeds: int, episodes: int, budget_scale: float, segments: int) -> dict:
    config, ready_every = budget_config(env_name, budget_scale, segments)
    take = lambda tree, i: jax.tree.map(lambda x: x[i], tree)  # noqa: E731
    rows = {"pbt": [], "grid": []}
    picks = {"pbt": [], "grid": []}
    times = {"pbt": 0.0, "grid": 0.0}
    lineages = []  # per seed: PBT's lineage and each member's final training return (for `plot_lineage`)
    for k in range(seeds):
        t0 = time.perf_counter()
        res = pbt(config, population=len(GRID), hyperparameters={"learning_rate": (min(GRID), max(GRID))},
                  ready_every=ready_every, key=jax.random.key(k))
        times["pbt"] += time.perf_counter() - t0
        best = res.best()
        rows["pbt"].append(greedy(config, take(res.state, best), k, episodes))
        picks["pbt"].append([float(x) for x in res.lineage["hyperparameters"]["learning_rate"][:, best]])
        lineages.append({"parent": res.lineage["parent"].tolist(), "score": nan_to_none(res.lineage["score"]),
                         "learning_rate": res.lineage["hyperparameters"]["learning_rate"].tolist(),
                         "final_return": nan_to_none(last_return(res.metrics["episode_return"])), "best": best})
        t0 = time.perf_counter()
        grid = sweep(config, num_seeds=1, seed=k, learning_rate=GRID, keep_state=True)
        times["grid"] += time.perf_counter() - t0
        cell = int(np.argmax(last_return(grid.metrics["episode_return"][:, 0])))
        rows["grid"].append(greedy(config, take(take(grid.state, cell), 0), k, episodes))
        picks["grid"].append(GRID[cell])
        print(f"{env_name} seed {k}: pbt {rows['pbt'][-1]:.1f}, grid {rows['grid'][-1]:.1f} (lr {GRID[cell]})",
              flush=True)
    out = {"env": env_name, "budget_per_member": config.num_updates * config.batch_size,
           "total_env_steps": len(GRID) * config.num_updates * config.batch_size, "budget_scale": budget_scale,
           "ready_every": ready_every, "segments": segments, "population": len(GRID), "grid": GRID,
           "seeds": seeds, "episodes": episodes}
    for side in ("pbt", "grid"):
        values = np.asarray(rows[side])
        low, high = bootstrap_iqm_ci(values)
        out[side] = {"iqm": float(iqm(values)), "ci": [low, high], "mean": float(values.mean()),
                     "per_seed": rows[side], "picked_lr": picks[side], "seconds": round(times[side], 1)}
    out["pbt"]["lineage"] = lineages
    return out


def nan_to_none(x) -> list:
    """A float array as a JSON-able nested list, non-finite values as None."""
    return [nan_to_none(v) for v in x] if np.ndim(x) else (float(x) if np.isfinite(x) else None)


def markdown(report: dict) -> str:
    lines = [f"# PBT vs grid sweep ({report['device']})", "",
             f"Population / grid size {len(GRID)} (learning rates {GRID}; PBT searches their range), greedy "
             f"evaluation IQM over seeds with 95% bootstrap CIs. Equal total environment steps per side. "
             f"Both split their members / cells over {report.get('devices', 1)} device(s); wall times include "
             f"compiles, on a shared machine.", "",
             "| env | steps per member | seeds | PBT IQM [95% CI] | grid best-cell IQM [95% CI] | PBT s | grid s |",
             "|---|---|---|---|---|---|---|"]
    for row in report["rows"]:
        label = "" if row["budget_scale"] >= 1 else f" (reduced budget x{row['budget_scale']})"
        cell = lambda s: f"{row[s]['iqm']:.1f} [{row[s]['ci'][0]:.1f}, {row[s]['ci'][1]:.1f}]"  # noqa: E731
        lines.append(f"| {row['env']}{label} | {row['budget_per_member']:,} | {row['seeds']} | {cell('pbt')} | "
                     f"{cell('grid')} | {row['pbt']['seconds']} | {row['grid']['seconds']} |")
    return "\n".join(lines) + "\n"


def plot_lineages(report: dict, out: Path) -> list[Path]:
    """``pbt-lineage-<env>-<device>.png``: seed 0's lineage per environment (`purejaxppo.runs.plotting.draw_lineage`)."""
    paths = []
    for row in report["rows"]:
        lin = row["pbt"].get("lineage")
        if not lin:
            continue
        seed0 = lin[0]
        nan = lambda rows: np.asarray([[np.nan if v is None else v for v in r] for r in rows], float)  # noqa: E731
        fig = draw_lineage({"parent": seed0["parent"], "hyperparameters": {"learning_rate": nan(seed0["learning_rate"])}},
                           np.asarray([np.nan if v is None else v for v in seed0["final_return"]], float),
                           row["ready_every"], f"{row['env']}: PBT lineage, seed 0 ({report['device']})")
        paths.append(save_png(fig, out / f"pbt-lineage-{row['env']}-{report['device']}.png"))
    return paths


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", default="Pendulum-v1,Acrobot-v1")
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--episodes", type=int, default=16)
    parser.add_argument("--budget-scale", type=float, default=1.0)
    parser.add_argument("--segments", type=int, default=10, help="PBT segments (generations + 1)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--plot-only", type=Path, default=None, help="draw the lineage plots of a results JSON")
    args = parser.parse_args(argv)
    if args.plot_only is not None:
        print(*plot_lineages(json.loads(args.plot_only.read_text()), args.out), sep="\n")
        return
    report = {"device": device_name(), "devices": len(jax.devices()), "platform": platform.platform(),
              "jax": jax.__version__,
              "rows": [run_env(env, args.seeds, args.episodes, args.budget_scale, args.segments)
                       for env in args.envs.split(",")]}
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"pbt-{report['device']}"
    stem.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    stem.with_suffix(".md").write_text(markdown(report))
    plot_lineages(report, args.out)
    print(markdown(report))


if __name__ == "__main__":
    main()
