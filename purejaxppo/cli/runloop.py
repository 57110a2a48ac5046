"""The chunked run loop that ``train`` and ``pbt`` share, and what it writes at the end.

`execute` creates a new run's directory, locks it and runs `run_chunks`: restore or initialise the state, compile,
then chunks of ``checkpoint_every`` updates, each run, checked for divergence (`find_divergence`), its metrics
written, then a checkpoint saved; a progress bar throughout; Ctrl-C, a failed write or save, a host environment
that raised (`pools.host_errors`) reported with how to resume; finally summary.json (`summarize`) and the one-line
result (`summary_line`). What differs between the two commands comes in as a `Program`: how to start, compile and
run a chunk, and what to add after a chunk and at the end.
"""

from __future__ import annotations

import sys
import time
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

from purejaxppo.cli.args import EXIT_DIVERGED, EXIT_INTERRUPTED, UsageError
from purejaxppo.cli.plans import RunPlan, create_run_dir

Say = Callable[..., None]


class Timing(typing.NamedTuple):
    """Where a training session's time went (see `purejaxppo.runs.logs` for the summary.json keys)."""

    wall: float  # compile + train
    compile: float  # compiling the chunk program (about 0 when this process had compiled it already)
    train: float  # the training loop: running the chunks, writing metrics, saving checkpoints


def summarize(plan: RunPlan, updates_done: int, steps_this_session: int, timing: Timing,
              diverged: str | None = None) -> dict[str, Any]:
    """The summary.json of a run, from its whole metrics.jsonl."""
    import numpy as np

    import purejaxppo
    from purejaxppo.runs.checkpoint import checkpoint_dir
    from purejaxppo.runs.logs import FINAL_WINDOW, METRICS_FILE, curves, final_returns, json_scalar, read_records

    records = read_records(plan.run_dir / METRICS_FILE)
    finals = final_returns(curves(records)[1]) if records else np.full(plan.num_seeds, np.nan)
    finite = finals[np.isfinite(finals)]
    return {
        "env_name": plan.config.env_name,
        "num_seeds": plan.num_seeds,
        "seed": plan.seed,
        "updates": updates_done,
        "complete": updates_done >= plan.config.num_updates,
        "diverged": diverged,  # None, or what went non-finite and where (the run stopped there)
        "env_steps_per_seed": updates_done * plan.config.batch_size,
        "episodes_finished": int(sum(r.get("episodes_finished") or 0 for r in records)),
        "final_episode_return": {
            "window_updates": FINAL_WINDOW,  # per seed: the mean episode return over its last 10 updates
            "mean": json_scalar(finite.mean()) if finite.size else None,
            "std": json_scalar(finite.std()) if finite.size else None,
            "per_seed": [json_scalar(v) for v in finals],
        },
        "wall_seconds": round(timing.wall, 3),
        "compile_seconds": round(timing.compile, 3),
        "train_seconds": round(timing.train, 3),
        "steps_per_second": round(steps_this_session / timing.train, 1) if timing.train > 0 else None,
        "checkpoint": str(checkpoint_dir(plan.run_dir) / str(updates_done)),
        "purejaxppo_version": purejaxppo.__version__,
    }


def summary_is_current(run_dir: Path, updates_done: int) -> bool:
    """Whether the run's summary.json was written at `updates_done`. A run killed after its last checkpoint and before
    its summary has none, or an older one: resuming it writes the summary (and a pbt run's lineage) then."""
    from purejaxppo.runs.logs import SUMMARY_FILE, read_json

    try:
        return read_json(run_dir / SUMMARY_FILE).get("updates") == updates_done
    except (OSError, ValueError, AttributeError):  # missing or torn (ValueError), not a JSON object
        return False


def summary_line(summary: dict[str, Any], run_dir: Path, unit: str = "seed") -> str:
    """The run's one-line result; `unit` names what the batch holds (seeds, or a PBT run's members)."""
    from purejaxppo.runs.logs import FINAL_WINDOW

    ret = summary["final_episode_return"]
    if ret["mean"] is None:
        episodes = summary.get("episodes_finished", 0)
        shown = ("n/a (no episode finished)" if not episodes else
                 f"n/a ({episodes} episodes finished, none with a finite return)")
    elif summary["num_seeds"] > 1:
        shown = f"{ret['mean']:.2f} ± {ret['std']:.2f} over {summary['num_seeds']} {unit}s"
    else:
        shown = f"{ret['mean']:.2f}"
    timing = f"{summary['wall_seconds']:.1f} s"
    if summary.get("compile_seconds") is not None and summary.get("steps_per_second") is not None:
        timing += (f" ({summary['compile_seconds']:.1f} s compiling, then {summary['steps_per_second']:,.0f} steps/s "
                   f"over all {unit}s)")
    return (f"{summary['env_name']}: {summary['env_steps_per_seed']:,} steps x {summary['num_seeds']} {unit}(s), "
            f"{summary['updates']} updates in {timing}. Final mean return (last "
            f"{FINAL_WINDOW} updates): {shown}. "
            f"Run: {run_dir}")


class Divergence(typing.NamedTuple):
    """The first update of a chunk where training went non-finite."""

    index: int  # row of the chunk's metrics
    update: int  # 1-based update number
    message: str


def find_divergence(metrics: dict[str, Any]) -> Divergence | None:
    """The first row of a chunk's metrics ``{name: [n, S]}`` whose "nonfinite" count is above 0, described."""
    import numpy as np

    from purejaxppo.training.metrics import DIVERGENCE_METRICS

    counts = np.asarray(metrics["nonfinite"])
    rows = np.flatnonzero((counts > 0).any(axis=1))
    if rows.size == 0:
        return None
    i = int(rows[0])
    seeds = [int(s) for s in np.flatnonzero(counts[i] > 0)]
    names = [n for n in DIVERGENCE_METRICS if not np.isfinite(np.asarray(metrics[n][i], np.float64)).all()]
    update = int(np.asarray(metrics["update"])[i].max())
    what = (", ".join(names) + " and " if names else "") + f"{int(counts[i].sum()):,} non-finite values in all"
    return Divergence(i, update, f"training diverged at update {update} (seed{'s' if len(seeds) > 1 else ''} "
                                 f"{', '.join(map(str, seeds))}): non-finite {what} (parameters, loss terms, "
                                 "gradient norm)")


def report_stale_lock(lock) -> None:
    """A warning when the run's lock file was left by a process that did not exit cleanly (killed, or crashed)."""
    if lock.stale_holder:
        print(f"warning: {lock.path} was left by a process that did not exit cleanly ({lock.stale_holder}); taken "
              "over", file=sys.stderr, flush=True)


def restore_newest(plan: RunPlan, ckpt, abstract: Callable[[], Any], layout: Any, say: Say) -> tuple[Any, int] | None:
    """``(state, update)`` from the newest checkpoint that reads back intact (a corrupt newer one is moved aside with
    a warning: `Checkpointer.restore_newest_intact`), or None for a fresh run, or a resumed one with no checkpoint
    yet (killed during its first interval: it starts again from update 0, the same start, since initialisation is a
    pure function of the seeds). `abstract()` gives the state's shapes."""
    if not plan.resumed:
        return None
    if ckpt.latest_step() is None:
        say(f"Resuming {plan.run_dir}: no checkpoint yet, starting from update 0")
        return None
    warn = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
    state, meta = ckpt.restore_newest_intact(abstract(), layout, warn)
    say(f"Resuming {plan.run_dir} from update {meta['update']} of {plan.config.num_updates}")
    return state, int(meta["update"])


def restart_note(env, update: int) -> str:
    """What resuming a run on a host pool says: its environments restart (`train.restart_envs`)."""
    return (f"{env.name} is a host pool, which a checkpoint cannot hold: its environments restart at update {update} "
            "(seeded from the run's key and the update: reproducible, not bit-identical to an uninterrupted run), "
            "and the episodes in flight are dropped")


def host_failure(error: Exception, kept: int | None, run_dir: Path, resume_hint: str) -> UsageError:
    """A host environment's failure (`pools.HostEnvError`) as the command line's one-line error: what failed and
    where, the checkpoint kept, how to continue."""
    from purejaxppo.runs.checkpoint import checkpoint_dir

    where = ("no checkpoint was saved" if kept is None else
             f"the last checkpoint, {checkpoint_dir(run_dir) / str(kept)} (update {kept}), is intact")
    return UsageError(f"{error}; {where}. Once the environment is fixed, {resume_hint}")


class NoFiles:
    """The checkpointer and the log of a process that writes nothing (not process 0 of a several-process run)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass

    def latest_step(self) -> None:
        return None

    def save(self, *args, **kwargs) -> None:
        pass

    def write(self, *args, **kwargs) -> None:
        pass

    def close(self) -> None:
        pass


class Program:
    """What a command puts into the run loop (`run_chunks`): the hooks raising NotImplementedError here are required,
    the others optional.

    Attributes:
      command: the command's name, for the resume hint (``purejaxppo <command> --resume <run>``).
      unit: what the batch holds, "seed" or "member", for the result line.
      layout: the run's `RunLayout`, saved with every checkpoint.
      bar_desc: the progress bar's description.
      log_options: keyword arguments for `RunLog` (TensorBoard, W&B).
      env: the run's environment when it is a host pool (`purejaxppo.envs.pools`), else None: its failures become one
        ``error:`` line naming the environment and its host step, the checkpoints kept (`pools.host_errors`).
    """

    command: str
    unit: str
    layout: Any
    bar_desc: str
    log_options: dict[str, Any] = {}  # noqa: RUF012 - never mutated
    env: Any = None

    def start(self, ckpt, end: int, say: Say) -> tuple[Any, int] | None:
        """``(state, updates done)``, restored or fresh; None when the run is already at `end` (said so)."""
        raise NotImplementedError

    def describe(self) -> str:
        """The start-up line (not printed with --quiet)."""
        raise NotImplementedError

    def compile(self, state) -> tuple[Any, float]:
        """``(state, seconds compiling)``: the chunk program compiled for `state`."""
        raise NotImplementedError

    def run(self, state, n: int, update: int, bar) -> tuple[Any, dict[str, Any]]:
        """Updates ``update + 1 .. update + n``: ``(state, metrics {name: [n, S]} with "update")``, each update's
        metrics passed to `bar`."""
        raise NotImplementedError

    def checkpoint_state(self, state):
        """The state a checkpoint holds: `state` itself, or, with several processes, every process's seeds gathered
        (called in every process: it may be a collective)."""
        return state

    def after_chunk(self, state, update: int) -> None:
        """After a chunk's checkpoint, `update` updates done."""

    def finish(self, summary: dict[str, Any], state, diverged: Divergence | None, kept: int | None) -> None:
        """Complete `summary` before it is written; `kept` is the newest checkpoint's update."""

    def divergence_advice(self, summary: dict[str, Any], kept: int | None) -> str:
        """What follows the divergence message in the error line."""
        raise NotImplementedError

    def report(self, summary: dict[str, Any]) -> None:
        """Print what follows the result line."""


def execute(plan: RunPlan, program: Callable[[], Program], quiet: bool, stop_after: int | None,
            run_json: dict[str, Any] | None = None) -> int:
    """Create a new run's directory (config.json, run.json with `run_json` added), lock it and run the `program` it
    makes (made once locked) in chunks; the exit status."""
    from purejaxppo.runs.runlock import RunLock
    from purejaxppo.scale.processes import is_writer

    if not is_writer():  # another process of a several-process run: it computes with process 0 and writes nothing
        import jax

        status = run_chunks(plan, program(), True, stop_after, writer=False)
        print(f"process {jax.process_index()} of {jax.process_count()}: done (exit {status}); process 0 wrote the run",
              flush=True)
        return status
    if not plan.resumed:
        create_run_dir(plan, run_json)
    with RunLock(plan.run_dir) as lock:
        report_stale_lock(lock)
        return run_chunks(plan, program(), quiet, stop_after)


def run_chunks(plan: RunPlan, program: Program, quiet: bool, stop_after: int | None, writer: bool = True) -> int:
    """Run (or resume) the locked run `plan` up to `stop_after` updates (default all): chunks of `checkpoint_every`
    updates, each followed by a metrics flush and a save (metrics first: a crash before the save only repeats that
    chunk); then summary.json and the result line. Returns the exit status.

    ``writer=False`` (the processes after the first of a several-process run): the same computation and collectives,
    nothing written or printed."""
    from purejaxppo.envs.pools import HostEnvError, host_errors
    from purejaxppo.runs.checkpoint import Checkpointer, CheckpointError, checkpoint_dir
    from purejaxppo.runs.compile_cache import cache_hits
    from purejaxppo.runs.logs import METRICS_FILE, SUMMARY_FILE, RunLog, RunWriteError, truncate_records, write_json
    from purejaxppo.runs.progress import ProgressBar, progress_enabled

    config, run_dir, seeds = plan.config, plan.run_dir, plan.num_seeds
    say = (lambda *a: None) if quiet else (lambda *a: print(*a, flush=True))
    resume_hint = f"continue with: purejaxppo {program.command} --resume {run_dir}"
    end = config.num_updates if stop_after is None else min(stop_after, config.num_updates)
    diverged = None
    with (Checkpointer(checkpoint_dir(run_dir)) if writer else NoFiles()) as ckpt:
        try:
            with host_errors(program.env):  # the environments' reset, on a host pool
                started = program.start(ckpt, end, say)
        except HostEnvError as e:
            raise host_failure(e, ckpt.latest_step(), run_dir, resume_hint) from e
        if started is None:
            return 0
        state, start = started
        if writer:
            truncate_records(run_dir / METRICS_FILE, start)  # drop metrics of updates after the checkpoint
        say(program.describe())
        log = (RunLog(run_dir, config.to_dict(), plan.run_id, start * config.batch_size, **program.log_options)
               if writer else NoFiles())
        bar = ProgressBar(config.timesteps_trained, start * config.batch_size,
                          enabled=writer and progress_enabled(quiet), desc=program.bar_desc)
        update, compile_seconds = start, 0.0
        try:
            t0 = t_train = time.time()
            with host_errors(program.env):  # a host environment failing in a chunk: that chunk is not saved
                if update < end:  # else only the end of the run is left to write (`summary_is_current`)
                    if not quiet:
                        print("compiling...", end=" ", flush=True)
                    with cache_hits() as hits:
                        state, compile_seconds = program.compile(state)
                    say(f"compiled in {compile_seconds:.1f} s"
                        + (" (from the compilation cache)" if hits.count else ""))
                    t_train = time.time()
                while update < end:
                    n = min(plan.checkpoint_every, end - update)
                    state, metrics = program.run(state, n, update, bar)
                    diverged = find_divergence(metrics)
                    if diverged is not None:  # keep the metrics up to it, and no checkpoint of the non-finite state
                        log.write({k: v[:diverged.index + 1] for k, v in metrics.items()})
                        update = diverged.update
                        break
                    log.write(metrics)
                    ckpt.save(program.checkpoint_state(state), program.layout, step=update + n)
                    update += n
                    program.after_chunk(state, update)
        except KeyboardInterrupt:
            bar.close()
            print(f"interrupted after update {update}; {resume_hint}", file=sys.stderr)
            return EXIT_INTERRUPTED
        except HostEnvError as e:
            raise host_failure(e, ckpt.latest_step(), run_dir, resume_hint) from e
        except (RunWriteError, CheckpointError) as e:
            raise UsageError(f"{e}. Once the cause is fixed, {resume_hint}") from None
        finally:
            bar.close()
            log.close()
        kept = ckpt.latest_step()
    if not writer:
        return EXIT_DIVERGED if diverged is not None else 0
    t_end = time.time()
    summary = summarize(plan, update, (update - start) * config.batch_size * seeds,
                        Timing(t_end - t0, compile_seconds, t_end - t_train), diverged.message if diverged else None)
    if diverged is not None:  # the last finite checkpoint, not the diverged update's (which was not saved)
        summary["checkpoint"] = None if kept is None else str(checkpoint_dir(run_dir) / str(kept))
    program.finish(summary, state, diverged, kept)
    write_json(run_dir / SUMMARY_FILE, summary)
    if diverged is not None:
        print(f"error: {diverged.message}; {program.divergence_advice(summary, kept)}", file=sys.stderr, flush=True)
        return EXIT_DIVERGED
    print(summary_line(summary, run_dir, program.unit), flush=True)
    program.report(summary)
    if not summary["complete"]:
        print(f"stopped at update {update} of {config.num_updates}; {resume_hint}", flush=True)
    return 0
