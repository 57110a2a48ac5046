"""The commands that read finished runs: ``eval``, ``export``, ``plot``, ``compare``, and ``list-envs``; each checks its
flags, then calls the library (`purejaxppo.runs`, `purejaxppo.envs`), imported only once the flags are good."""

from __future__ import annotations

import sys
from pathlib import Path

from purejaxppo.cli.args import Compare, Eval, Export, ListEnvs, Plot, UsageError, check_positive, check_seed


def eval_command(cmd: Eval) -> int:
    """Print the returns of `cmd.episodes` episodes of a checkpointed policy; optionally render one to a GIF."""
    import jax
    import numpy as np

    from purejaxppo.runs.policy import load_policy

    check_positive(cmd, "episodes", "gif-max-steps")
    check_seed(cmd.eval_seed, "eval-seed")
    loaded = load_policy(cmd.path, seed_index=cmd.seed_index, deterministic=not cmd.sample)
    if cmd.gif is not None:
        from purejaxppo.runs.plotting import check_gif_support

        check_gif_support(loaded.config)  # fail before evaluating
    returns = np.asarray(loaded.evaluate(cmd.episodes, jax.random.key(cmd.eval_seed)))
    mode = "sampled" if cmd.sample else "greedy"
    episodes = f"{cmd.episodes} episode{'s' if cmd.episodes != 1 else ''}"
    print(f"{loaded.config.env_name} (update {loaded.update}, seed {cmd.seed_index}), {episodes}, "
          f"{mode} actions: mean return {returns.mean():.2f} ± {returns.std():.2f} "
          f"(min {returns.min():.2f}, max {returns.max():.2f})")
    print("returns: " + " ".join(f"{r:.2f}" for r in returns))
    if cmd.gif is not None:
        from purejaxppo.runs.plotting import render_gif

        path, steps, ret = render_gif(loaded, cmd.gif, jax.random.key(cmd.eval_seed), cmd.gif_max_steps)
        print(f"wrote {path} ({steps} steps, return {ret:.2f})")
    return 0


def export_command(cmd: Export) -> int:
    """Write the exported policy and its description; print where."""
    from purejaxppo.runs.export import check_out_path, export_policy

    check_positive(cmd, "batch-size")
    if cmd.seed_index < 0:
        raise UsageError(f"--seed-index must be >= 0, got {cmd.seed_index}")
    if cmd.out is not None:
        check_out_path(cmd.out, "--out")
    path = export_policy(cmd.path, cmd.format, seed_index=cmd.seed_index, out=cmd.out, batch_size=cmd.batch_size)
    print(f"wrote {path} ({cmd.format}; inputs and outputs described in {path}.json)")
    return 0


def plot_command(cmd: Plot) -> int:
    from purejaxppo.runs.plotting import plot_runs

    if not cmd.runs:
        raise UsageError("plot needs at least one run directory")
    check_positive(cmd, "smooth")
    out = cmd.out or (Path(cmd.runs[0]) / "learning_curves.png" if len(cmd.runs) == 1 else
                      Path("learning_curves.png"))
    path = plot_runs(cmd.runs, out, cmd.metric, cmd.smooth, cmd.labels, cmd.title)
    print(f"wrote {path}")
    return 0


def compare_command(cmd: Compare) -> int:
    """The comparison table on stdout; a warning on stderr first when the runs are on different environments."""
    if not cmd.runs:
        raise UsageError("compare needs at least one run directory")
    if cmd.csv and cmd.markdown:
        raise UsageError("give --csv or --markdown, not both")
    check_positive(cmd, "episodes")
    check_seed(cmd.eval_seed, "eval-seed")
    missing = [f"{run} {'is not a directory' if Path(run).exists() else 'does not exist'}"
               for run in cmd.runs if not Path(run).is_dir()]
    if missing:
        raise UsageError(f"compare takes run directories: {'; '.join(missing)}")
    from purejaxppo.runs.compare import compare_runs, environment_note, format_table

    results = compare_runs(cmd.runs, cmd.episodes, cmd.eval_seed)
    note = environment_note(results)
    if note:
        print(f"warning: {note}", file=sys.stderr, flush=True)
    style = "csv" if cmd.csv else "markdown" if cmd.markdown else "text"
    print(format_table(results, style, cmd.episodes), end="", flush=True)
    return 0


def list_envs_command(cmd: ListEnvs) -> int:
    from purejaxppo.configs import shipped_config_names
    from purejaxppo.envs.registry import NEEDS_NETWORK, SUITES, registered_env_names, suite_installed

    shipped = set(shipped_config_names())
    for name in registered_env_names():
        note = " (downloads data: unusable offline)" if name in NEEDS_NETWORK else ""
        print(f"{'*' if name in shipped else ' '} {name}{note}")
    for name in sorted(n for n in shipped if any(n.startswith(p) for p in SUITES)):
        print(f"* {name}")
    print("* = shipped config (purejaxppo/configs/<env>.toml)")
    print("Other suites (env name <suite>:<name>), each an extra unless it comes with purejaxppo:")
    for prefix, entry in SUITES.items():
        suite = prefix.rstrip(":")
        install = f"pip install {entry.module}" if entry.core else f"pip install 'purejaxppo[{suite}]'"
        print(f"  {suite}: " + ("installed" + (" (comes with purejaxppo)" if entry.core else "")
                                if suite_installed(prefix) else f"not installed ({install})"))
    return 0
