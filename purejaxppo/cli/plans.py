"""A run resolved before it starts: `RunPlan` (config, seeds, directory, checkpoint interval) for a new run, with its
checks and `create_run_dir`, or read back from a run directory for ``--resume``; shared by ``train`` and ``pbt``.
Nothing is created until `create_run_dir`."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
import typing
import uuid
from pathlib import Path
from typing import Any

from purejaxppo.cli.args import DEFAULT_CHECKPOINTS_PER_RUN, DEFAULT_ENV, Pbt, Train, UsageError, override_values

if typing.TYPE_CHECKING:
    from purejaxppo.config import PPOConfig


def requested_config(cmd: Train | Pbt) -> PPOConfig:
    """The config `cmd` asks for: the env's (or file's) config with the command-line overrides applied."""
    from purejaxppo.configs import is_config_path, load_config

    if cmd.env is not None and not cmd.env.strip():
        raise UsageError("--env is empty: give an environment name (purejaxppo list-envs lists them) or a config file")
    if cmd.config_file is not None:
        config = load_config(Path(cmd.config_file))
        if cmd.env is not None:
            if is_config_path(cmd.env):
                raise UsageError("give the config file with --config-file or --env, not both")
            config = config.replace(env_name=cmd.env)
    else:
        config = load_config(DEFAULT_ENV if cmd.env is None else cmd.env)
    overrides = override_values(cmd.config)
    return config.replace(**overrides) if overrides else config


def default_run_dir(env_name: str) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = Path("runs") / f"{env_name.replace(':', '-').replace('/', '-')}-{stamp}"
    path, i = base, 1
    while path.exists():
        i += 1
        path = base.with_name(f"{base.name}-{i}")
    return path


def default_checkpoint_every(num_updates: int) -> int:
    return max(1, math.ceil(num_updates / DEFAULT_CHECKPOINTS_PER_RUN))


@dataclasses.dataclass(frozen=True)
class RunPlan:
    """Everything the training loop needs, resolved from the command line (and the run directory on resume)."""

    config: PPOConfig
    num_seeds: int
    seed: int
    run_dir: Path
    checkpoint_every: int
    run_id: str
    resumed: bool


def check_new_run_dir(run_dir: Path, resumable: bool = True) -> None:
    """A new run needs a directory that is absent or empty, not a file and not under one. `resumable`: the command
    has --resume (train, pbt; not sweep), which the message then offers."""
    for parent in [run_dir, *run_dir.parents]:
        if parent.exists() and not parent.is_dir():
            where = "is a file" if parent == run_dir else f"lies under the file {parent}"
            raise UsageError(f"--logdir {run_dir} {where}; choose a directory")
    if not run_dir.exists() or not any(run_dir.iterdir()):
        return
    if not resumable:
        raise UsageError(f"--logdir {run_dir} is not empty: a sweep writes into a new directory; choose another "
                         "--logdir")
    if not torn_creation(run_dir):
        raise UsageError(f"--logdir {run_dir} already holds a run: continue it with --resume {run_dir}, "
                         "or choose another --logdir")


def torn_creation(run_dir: Path) -> bool:
    """Whether `run_dir` holds only what `create_run_dir` writes before run.json (config.json, their temporary
    files): a run killed while its directory was created, which a new run may take over (--resume cannot read it)."""
    from purejaxppo.runs.logs import CONFIG_FILE, RUN_FILE

    names = {p.name for p in run_dir.iterdir()}
    return names <= {CONFIG_FILE, CONFIG_FILE + ".tmp", RUN_FILE + ".tmp"}


def plan_new_run(cmd: Any, config: PPOConfig, num_seeds: int, name: str) -> RunPlan:
    """Resolve a fresh run of `config` for a train or pbt `cmd` (nothing is created yet: see `create_run_dir`);
    `name` starts the default --logdir's name."""
    every = cmd.checkpoint_every or default_checkpoint_every(config.num_updates)
    run_dir = Path(cmd.logdir) if cmd.logdir is not None else default_run_dir(name)
    check_new_run_dir(run_dir)
    return RunPlan(config, num_seeds, cmd.seed or 0, run_dir, every, uuid.uuid4().hex[:12], resumed=False)


def create_run_dir(plan: RunPlan, extra: dict[str, Any] | None = None) -> None:
    """Create a new run's directory with its config.json and run.json (plus `extra` fields); on failure remove
    whatever was created."""
    import jax

    import purejaxppo
    from purejaxppo.runs.logs import CONFIG_FILE, RUN_FILE, write_json

    run_dir = plan.run_dir
    created = [p for p in [run_dir, *run_dir.parents] if not p.exists()][::-1]  # outermost first
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_json(run_dir / CONFIG_FILE, plan.config.to_dict())
        write_json(run_dir / RUN_FILE, {
            "run_id": plan.run_id, "env_name": plan.config.env_name, "num_seeds": plan.num_seeds, "seed": plan.seed,
            "checkpoint_every": plan.checkpoint_every, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "purejaxppo_version": purejaxppo.__version__, "jax_version": jax.__version__, **(extra or {}),
        })
    except OSError as e:
        for name in (CONFIG_FILE, RUN_FILE, CONFIG_FILE + ".tmp", RUN_FILE + ".tmp"):
            with contextlib.suppress(OSError):
                (run_dir / name).unlink()
        for path in reversed(created):
            with contextlib.suppress(OSError):
                path.rmdir()
        raise UsageError(f"cannot create the run directory {run_dir}: {e.strerror or e}") from None


def plan_resumed_run(cmd: Train | Pbt) -> RunPlan:
    """Read a run directory back; any config, seed or seed-count flags given must agree with it."""
    from purejaxppo.runs.checkpoint import checkpoint_dir, config_differences
    from purejaxppo.runs.logs import CONFIG_FILE, RUN_FILE, read_json

    run_dir = Path(cmd.resume)
    if not (run_dir / RUN_FILE).is_file() or not (run_dir / CONFIG_FILE).is_file():
        raise UsageError(f"--resume {run_dir}: not a run directory (no {RUN_FILE} and {CONFIG_FILE})")
    if checkpoint_dir(run_dir).exists() and not checkpoint_dir(run_dir).is_dir():
        raise UsageError(f"--resume {run_dir}: {checkpoint_dir(run_dir)} is a file, not the checkpoint directory; "
                         "move it away")
    if cmd.logdir is not None and Path(cmd.logdir).resolve() != run_dir.resolve():
        raise UsageError("--resume continues the run in its own directory; leave out --logdir")
    info = read_json(run_dir / RUN_FILE)
    if isinstance(cmd, Train) and info.get("kind") == "pbt":
        raise UsageError(f"--resume {run_dir}: this is a PBT run; continue it with purejaxppo pbt --resume {run_dir}")
    missing = [k for k in ("run_id", "num_seeds", "seed", "checkpoint_every") if k not in info]
    if missing:
        raise UsageError(f"--resume {run_dir}: {RUN_FILE} lacks {missing}; it was not written by purejaxppo train")
    from purejaxppo.config import PPOConfig

    try:
        config = PPOConfig.from_dict(read_json(run_dir / CONFIG_FILE))
    except (TypeError, ValueError) as e:
        raise UsageError(f"{run_dir / CONFIG_FILE}: {e}") from None
    overrides = override_values(cmd.config)
    if cmd.env is not None or cmd.config_file is not None or overrides:
        asked = (requested_config(cmd) if cmd.env is not None or cmd.config_file is not None else
                 config.replace(**overrides))
        diffs = config_differences(config.to_dict(), asked.to_dict())
        if diffs:
            raise UsageError(f"--resume {run_dir}: the run was trained with a different config ("
                             + "; ".join(d.replace("(checkpoint)", "(run)").replace("(this run)", "(asked)")
                                         for d in diffs) + "); a resumed run keeps its config")
    for flag, value in (("num-seeds", getattr(cmd, "num_seeds", None)), ("seed", cmd.seed)):
        saved = info[flag.replace("-", "_")]
        if value is not None and value != saved:
            raise UsageError(f"--resume {run_dir}: the run has --{flag} {saved}, not {value}")
    every = cmd.checkpoint_every or int(info["checkpoint_every"])
    return RunPlan(config, int(info["num_seeds"]), int(info["seed"]), run_dir, every, info["run_id"], resumed=True)

