"""A table comparing run directories (``purejaxppo compare RUN [RUN ...]``).

Per run: the final greedy return, measured now by evaluating each seed's latest checkpoint
(what ``load_policy(run, seed_index=s).evaluate(episodes, key)`` gives, the same key for every seed, with the
run restored once and all seeds played in one vmapped program) and summarised over seeds as
the mean, the interquartile mean and a 95% percentile-bootstrap confidence interval of the mean (`plotting.iqm`,
`plotting.bootstrap_ci`); the steps per seed of that checkpoint; the wall time of the run's last session (summary.json);
and the settings that differ between the runs (config.json, plus the seed count and base seed from run.json). A
directory that cannot be evaluated (no checkpoint yet, not a run, a diverged checkpoint) gets "-" and a note. Runs on
different environments are compared too (one policy across variants may be meant), with a note saying so
(`environment_note`).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np

from purejaxppo.runs.checkpoint import CheckpointError, checkpoint_dir
from purejaxppo.runs.policy import check_finite_params, restore_run_state
from purejaxppo.training.evaluation import play_episodes
from purejaxppo.runs.logs import CONFIG_FILE, RUN_FILE, SUMMARY_FILE, read_json
from purejaxppo.runs.plotting import bootstrap_ci, iqm

STYLES = ("text", "markdown", "csv")
RUN_SETTINGS = ("num_seeds", "seed")  # from run.json, compared with the config's fields


class RunResult(NamedTuple):
    """One run of the table; None where unknown."""

    run: Path
    env_name: str | None
    num_seeds: int | None
    update: int | None  # of the evaluated checkpoint
    steps_per_seed: int | None  # of the evaluated checkpoint
    wall_seconds: float | None  # summary.json: the last session's
    returns: np.ndarray | None  # [S]: each seed's mean greedy return
    settings: dict[str, Any]  # config.json and RUN_SETTINGS
    note: str | None  # why something is missing

    def stats(self) -> dict[str, float | None]:
        """mean, iqm, ci_low and ci_high of `returns` over seeds (None when there are none)."""
        if self.returns is None or not self.returns.size:
            return dict.fromkeys(("mean", "iqm", "ci_low", "ci_high"))
        low, high = bootstrap_ci(self.returns[:, None])
        return {"mean": float(self.returns.mean()), "iqm": float(iqm(self.returns)),
                "ci_low": float(low[0]), "ci_high": float(high[0])}


def _read_optional(path: Path) -> dict[str, Any]:
    try:
        value = read_json(path)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def evaluate_run(run_dir: str | Path, episodes: int = 32, key: jax.Array | None = None) -> RunResult:
    """Evaluate every seed of a run's latest checkpoint greedily, as `load_policy(run, seed_index=s).evaluate` does but
    restored once and played in one program vmapped over the seeds; never raises for a bad run directory."""
    run = Path(run_dir)
    key = jax.random.key(0) if key is None else key
    config, info, summary = (_read_optional(run / name) for name in (CONFIG_FILE, RUN_FILE, SUMMARY_FILE))
    settings = {**config, **{k: info[k] for k in RUN_SETTINGS if k in info}}
    wall = summary.get("wall_seconds")
    partial = dict(run=run, env_name=config.get("env_name"), num_seeds=info.get("num_seeds"), update=None,
                   steps_per_seed=None, wall_seconds=wall, returns=None, settings=settings)
    if not run.is_dir():
        return RunResult(**partial, note="not a directory")
    if not config or not info:
        return RunResult(**partial, note=f"not a run directory (no {CONFIG_FILE} and {RUN_FILE})")
    ckpts = checkpoint_dir(run)
    if not ckpts.is_dir() or not any(p.name.isdigit() for p in ckpts.iterdir()):
        return RunResult(**partial, note="no checkpoint yet")
    try:
        state, meta, fns = restore_run_state(run)  # every seed at once, read once
        for seed in range(int(meta["num_seeds"])):
            check_finite_params(jax.tree.map(lambda x, s=seed: x[s], state.params), run, seed)
        setup, config = fns.setup, fns.setup.config
        play = jax.jit(jax.vmap(lambda params, stats: play_episodes(setup.env, setup.policy, params, stats, key,
                                                                     config, episodes)))
        returns = np.asarray(play(state.params, state.obs_stats)).mean(axis=1)  # [S]: each seed's mean return
    except (ValueError, TypeError, CheckpointError, OSError) as e:
        return RunResult(**partial, note=" ".join(str(e).split()))
    update = int(meta["update"])
    return RunResult(**{**partial, "update": update, "steps_per_seed": update * config.batch_size,
                        "returns": returns}, note=None)


def differing_settings(results: Sequence[RunResult]) -> list[str]:
    """The settings whose values differ between the runs that have settings (one a run lacks counts as differing),
    in order; env_name, which has its own column, is left out."""
    runs = [r for r in results if r.settings]
    names: list[str] = []
    for r in runs:
        names += [n for n in r.settings if n not in names and n != "env_name"]
    key = lambda r, n: json.dumps(r.settings.get(n), sort_keys=True)  # noqa: E731
    return [n for n in names if len({key(r, n) for r in runs}) > 1]


def environment_note(results: Sequence[RunResult]) -> str | None:
    """When the runs are on different environments (returns on different scales, which may still be meant: one
    policy across variants), a sentence naming each run's environment; else None."""
    named = [r for r in results if r.env_name]
    if len({r.env_name for r in named}) < 2:
        return None
    return ("The runs are on different environments (" + ", ".join(f"{r.run}: {r.env_name}" for r in named)
            + "): their returns are not on one scale.")


def _setting(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return " ".join(map(str, value))
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return str(value).lower() if isinstance(value, bool) else str(value)


def _num(value: float | None, spec: str) -> str:
    return "-" if value is None or not math.isfinite(value) else format(value, spec)


def format_table(results: Sequence[RunResult], style: str = "text", episodes: int = 32) -> str:
    """The table in `style` ("text": aligned columns and notes below; "markdown"; "csv": raw numbers, a note
    column)."""
    if style not in STYLES:
        raise ValueError(f"style must be one of {list(STYLES)}, got {style!r}")
    differing = differing_settings(results)
    if style == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["run", "env", "seeds", "update", "steps_per_seed", "wall_seconds", "return_mean",
                         "return_iqm", "return_ci_low", "return_ci_high", *differing, "note"])
        for r in results:
            s = r.stats()
            writer.writerow([str(r.run), r.env_name or "", r.num_seeds or "", r.update or "", r.steps_per_seed or "",
                             "" if r.wall_seconds is None else r.wall_seconds,
                             *("" if s[k] is None else s[k] for k in ("mean", "iqm", "ci_low", "ci_high")),
                             *(_setting(r.settings.get(n)) for n in differing), r.note or ""])
        return out.getvalue()
    header = ["run", "env", "seeds", "steps/seed", "wall s", "return", "IQM", "95% CI", *differing]
    rows, notes = [], []
    for r in results:
        s = r.stats()
        ci = "-" if s["ci_low"] is None else f"[{s['ci_low']:.2f}, {s['ci_high']:.2f}]"
        name = str(r.run)
        if r.note:
            notes.append(f"{name}: {r.note}")
            name += f" [{len(notes)}]"
        rows.append([name, r.env_name or "-", str(r.num_seeds or "-"),
                     "-" if r.steps_per_seed is None else f"{r.steps_per_seed:,}", _num(r.wall_seconds, ".1f"),
                     _num(s["mean"], ".2f"), _num(s["iqm"], ".2f"), ci,
                     *(_setting(r.settings.get(n)) for n in differing)])
    caption = (f"Final greedy return: each seed's latest checkpoint over {episodes} episode(s); mean, IQM and 95% "
               "bootstrap CI over seeds. wall s: the run's last session.")
    footer = [f"[{i}] {n}" for i, n in enumerate(notes, 1)]
    if environment_note(results):
        footer.append(environment_note(results))
    if not differing and sum(bool(r.settings) for r in results) > 1:
        footer.append("The runs have the same settings.")
    if style == "markdown":
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
        return "\n".join([caption, "", *lines, *([""] + footer if footer else [])]) + "\n"
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    numeric = {2, 3, 4, 5, 6}
    fmt = lambda row: "  ".join(c.rjust(w) if i in numeric else c.ljust(w)  # noqa: E731
                                for i, (c, w) in enumerate(zip(row, widths))).rstrip()
    return "\n".join([caption, "", fmt(header), *(fmt(row) for row in rows), *([""] + footer if footer else [])]) + "\n"


def compare_runs(run_dirs: Sequence[str | Path], episodes: int = 32, eval_seed: int = 0) -> list[RunResult]:
    """`evaluate_run` for each run directory, all with the evaluation key ``jax.random.key(eval_seed)``."""
    key = jax.random.key(eval_seed)
    return [evaluate_run(run, episodes, key) for run in run_dirs]
