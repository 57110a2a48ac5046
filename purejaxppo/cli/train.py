"""``purejaxppo train``: the checks and plan of a run (or ``--print-config``), then the run loop over a `ChunkRunner`
(`purejaxppo.runs.progress`): one compiled program for every chunk, streaming each update's metrics to the bar."""

from __future__ import annotations

import importlib.util
from typing import Any

from purejaxppo.cli.args import DEFAULT_ENV, Train, UsageError, check_positive, check_seed, override_values
from purejaxppo.cli.plans import RunPlan, default_checkpoint_every, plan_new_run, plan_resumed_run, requested_config
from purejaxppo.cli.runloop import Program, execute, restart_note, restore_newest, summary_is_current

EXTRAS = {"tensorboard": ("tensorboardX", "tensorboard"), "wandb": ("wandb", "wandb")}  # flag: (module, extra)


def train_command(cmd: Train) -> int:
    """Train (or resume) a run: chunks of `checkpoint_every` updates, each followed by a metrics flush and a save.

    Everything that can be checked is checked before the run directory is created: the flags, the config, the
    extras, the environment (built with its env_kwargs) and the directory itself.
    """
    from purejaxppo.runs.progress import chunk_runner

    check_positive(cmd, "num-seeds", "checkpoint-every", "stop-after")
    check_seed(cmd.seed)
    if cmd.print_config:
        return print_config(cmd)
    check_extras(cmd)
    if cmd.resume is not None:
        plan = plan_resumed_run(cmd)
    else:
        config = requested_config(cmd)
        plan = plan_new_run(cmd, config, cmd.num_seeds or 1, config.env_name)
    runner = chunk_runner(plan.config)  # builds the environment and the policy (no compile yet)
    check_processes(plan, runner)
    done = finished_update(plan, runner, cmd.stop_after)
    if done is not None and summary_is_current(plan.run_dir, done):
        print(f"{plan.run_dir} is already at update {done} of {plan.config.num_updates}"
              + (" (complete)" if done >= plan.config.num_updates else f" (--stop-after {cmd.stop_after})")
              + ": nothing to do, its files are left as they are", flush=True)
        return 0
    return execute(plan, lambda: TrainProgram(cmd, plan, runner), cmd.quiet, cmd.stop_after)


def check_processes(plan: RunPlan, runner) -> None:
    """With several processes: the seeds must divide evenly between them, and host pools stay on one host."""
    from purejaxppo.scale import processes

    if processes.count() == 1:
        return
    if runner.host_pool is not None:
        raise UsageError(f"{runner.host_pool.name} is a host pool, stepped by this host's workers: train it in one "
                         "process (without --coordinator-address/--distributed)")
    try:
        processes.seed_slice(plan.num_seeds)
    except ValueError as e:
        raise UsageError(str(e)) from None


class TrainProgram(Program):
    """The seeds of one config, vmapped in the runner's chunk program. With several processes each trains its own
    block of the seeds (`processes.seed_slice`); the chunks' metrics and the checkpoints gather all of them."""

    command, unit = "train", "seed"

    def __init__(self, cmd: Train, plan: RunPlan, runner):
        from purejaxppo.runs.checkpoint import RunLayout

        from purejaxppo.scale import processes

        self.plan, self.runner = plan, runner
        self.shared = processes.count() > 1
        self.mine = processes.seed_slice(plan.num_seeds)  # this process's seeds (all of them, alone)
        self.env = runner.host_pool
        self.layout = RunLayout(plan.config, plan.num_seeds, plan.seed)
        self.bar_desc = plan.config.env_name + (f" x{plan.num_seeds}" if plan.num_seeds > 1 else "")
        self.log_options = {"tensorboard": cmd.tensorboard, "wandb": cmd.wandb, "wandb_mode": cmd.wandb_mode,
                            "quiet": cmd.quiet}

    def start(self, ckpt, end: int, say) -> tuple[Any, int]:
        """``(batched [S] RunState, updates done)``: the newest intact checkpoint when resuming, else freshly
        initialised (`restore_newest`). A host pool's environments restart on resuming (`ChunkRunner.restart`)."""
        from purejaxppo.runs.checkpoint import batched_keys

        plan = self.plan
        if self.shared:
            return self._start_shared(ckpt, say)
        restored = self._restore(ckpt, say)
        if restored is None:
            return self.runner.init(batched_keys(plan.seed, plan.num_seeds)), 0
        state, update = restored
        if self.env is not None:
            state = self.runner.restart(state, update)
            say(restart_note(self.env, update))
        return state, update

    def _restore(self, ckpt, say) -> tuple[Any, int] | None:
        """``(state, update)`` of the newest intact checkpoint, or None (`restore_newest`)."""
        from purejaxppo.runs.checkpoint import abstract_state

        return restore_newest(self.plan, ckpt, lambda: abstract_state(self.runner.fns.init, self.layout),
                              self.layout, say)

    def _start_shared(self, ckpt, say) -> tuple[Any, int]:
        """Several processes: process 0 restores the newest checkpoint (if any) and shares it; each process keeps its
        own seeds. Every process computes the fresh states of all seeds (cheap), the shapes to share into."""
        import jax
        import numpy as np

        from purejaxppo.runs.checkpoint import batched_keys
        from purejaxppo.scale import processes

        plan = self.plan
        state = self.runner.init(batched_keys(plan.seed, plan.num_seeds))
        restored = self._restore(ckpt, say) if processes.is_writer() else None
        update = int(processes.from_writer(np.int32(0 if restored is None else restored[1])))
        if update > 0:
            state = processes.from_writer(restored[0] if restored is not None else state)
        return jax.device_put(processes.take_seeds(state, self.mine)), update

    def checkpoint_state(self, state):
        from purejaxppo.scale import processes

        return processes.gather_seeds(state) if self.shared else state

    def describe(self) -> str:
        from purejaxppo.runs.progress import device_description
        from purejaxppo.scale import processes

        plan, config = self.plan, self.plan.config
        where = device_description() + (f" x {processes.count()} processes" if self.shared else "")
        return (f"Training {config.env_name} on {where}: {plan.num_seeds} seed(s) x "
                f"{config.num_updates} updates x {config.batch_size} steps ({config.timesteps_trained:,} steps per "
                f"seed), checkpoint every {plan.checkpoint_every} updates -> {plan.run_dir}")

    def compile(self, state) -> tuple[Any, float]:
        return self.runner.compile(state)

    def run(self, state, n: int, update: int, bar) -> tuple[Any, dict[str, Any]]:
        from purejaxppo.scale import processes

        state, metrics = self.runner.run(state, n, sink=bar)
        return state, (processes.gather_seeds(metrics, axis=1) if self.shared else metrics)

    def divergence_advice(self, summary: dict[str, Any], kept: int | None) -> str:
        last = (f"the last finite checkpoint is {summary['checkpoint']} (update {kept})"
                if kept is not None else "no checkpoint was saved before it")
        return f"{last}. A smaller --learning-rate or --max-grad-norm usually helps"


def check_extras(cmd: Train) -> None:
    """Refuse --tensorboard/--wandb without their package, before anything is created."""
    for flag, (module, extra) in EXTRAS.items():
        if getattr(cmd, flag) and importlib.util.find_spec(module) is None:
            raise UsageError(f"--{flag} needs {module}: pip install 'purejaxppo[{extra}]'")


def finished_update(plan: RunPlan, runner, stop_after: int | None) -> int | None:
    """For a resumed run already at its end (or past `stop_after`): the update of its newest checkpoint, which must
    read back intact and belong to the run (otherwise None, and resuming reports or repairs it)."""
    from purejaxppo.runs.checkpoint import Checkpointer, CheckpointError, RunLayout, abstract_state, checkpoint_dir

    if not plan.resumed or not checkpoint_dir(plan.run_dir).is_dir():
        return None
    end = plan.config.num_updates if stop_after is None else min(stop_after, plan.config.num_updates)
    layout = RunLayout(plan.config, plan.num_seeds, plan.seed)
    with Checkpointer(checkpoint_dir(plan.run_dir), read_only=True) as ckpt:
        done = ckpt.latest_step()
        if done is None or done < end:
            return None
        try:
            ckpt.restore(abstract_state(runner.fns.init, layout), layout, done)
        except CheckpointError:
            return None
    return done


def print_config(cmd: Train) -> int:
    """--print-config: the config `cmd` would train with, as a TOML config file, and the run's size as comments."""
    from purejaxppo.configs import config_toml

    if cmd.resume is not None:
        plan = plan_resumed_run(cmd)
        config, seeds, seed, source = plan.config, plan.num_seeds, plan.seed, f"the run {plan.run_dir}"
    else:
        config, seeds, seed = requested_config(cmd), cmd.num_seeds or 1, cmd.seed or 0
        source = f"--config-file {cmd.config_file}" if cmd.config_file is not None else (
            f"--env {DEFAULT_ENV if cmd.env is None else cmd.env}")
    every = cmd.checkpoint_every or default_checkpoint_every(config.num_updates)
    print(config_toml(config, (
        f"PPOConfig from {source}{' with the flags given' if override_values(cmd.config) else ''}\n"
        f"{config.num_updates} updates x {config.batch_size} steps (num_envs x num_steps) = "
        f"{config.timesteps_trained:,} steps per seed\n"
        f"{seeds} seed(s) from base seed {seed}, a checkpoint every {every} updates")), end="", flush=True)
    return 0

