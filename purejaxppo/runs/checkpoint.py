"""Checkpoints of a whole training run (orbax-checkpoint), checked on the way back in (`load_policy` and
`save_run` are in `purejaxppo.runs.policy`).

A checkpoint is an orbax step directory ``<run>/checkpoints/<update>/`` with two items:

* ``state``: the batched `RunState` of every seed ([S, ...] leaves: params, optimiser state, normalisation
  statistics, the rollout state (environment states, observations, done flags, the policy's carry), RNG keys as raw
  key data, the update counter), saved
  with `StandardSave` as a flat ``{leaf path: array}`` dict of plain arrays;
* ``meta``: JSON with the checkpoint format, the purejaxppo version, the run's config (`PPOConfig.to_dict`), the
  number of seeds and base seed, every leaf's shape and dtype, the PRNG implementation of each key leaf, a
  SHA-256 digest of all the array bytes, and, for a run trained on an environment object (`save_run` with
  ``env=``), that object's class as ``custom_env`` (loading the run then needs the object: ``load_policy(path,
  env=...)``).

Nothing is pickled: arrays go through tensorstore and everything else is JSON. Saves are atomic: orbax writes into
``<update>.orbax-checkpoint-tmp-*`` and renames the directory once every file is written (`AtomicRenameTemporaryPath`
on local file systems), so a run killed mid-save leaves only a temporary directory that is ignored (and removed when
the run resumes). Restoring checks, in order, that the metadata reads, that the format and purejaxppo version match,
that the config and seed layout match the run being resumed, that every leaf has the expected shape and dtype, that
the arrays read, and that their digest matches: a corrupt, truncated or incompatible checkpoint raises
`CheckpointError` naming what is wrong, never a silent wrong start. A checkpoint written by another purejaxppo version
is refused with an error naming both versions (format 1, purejaxppo 0.1.0, kept the GRU's carry and the update
counter under other names).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import shutil
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

from purejaxppo.config import PPOConfig
from purejaxppo.core.streams import is_key
from purejaxppo.version import __version__

FORMAT_VERSION = 2
CHECKPOINT_DIRNAME = "checkpoints"
DEFAULT_MAX_TO_KEEP = 2
TMP_MARKER = ".orbax-checkpoint-tmp"  # orbax's temporary step directories: <update>.orbax-checkpoint-tmp-<n>
META_KEYS = ("config", "num_seeds", "seed", "update", "leaves", "key_impls", "sha256")


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, corrupt, truncated or incompatible with the run asking for it."""


class CorruptCheckpointError(CheckpointError):
    """A checkpoint whose files cannot be read or do not match their digest (an older one may still be intact)."""


class RunLayout(NamedTuple):
    """What a training state's shapes and values depend on besides the code: the config and the seeds (for a `pbt`
    run: the members), for a PBT run its settings (`pbt`: population, search space, ready_every, quantile, as
    JSON; the checkpoint then holds a `population.PopulationState`), and for a run trained on an environment object
    rather than `config.env_name` that object's class (`custom_env`, ``"module.Class"``: loading it needs the object
    again, ``load_policy(path, env=...)``)."""

    config: PPOConfig
    num_seeds: int
    seed: int
    pbt: dict | None = None
    custom_env: str | None = None  # a run trained on an environment object (`save_run(env=...)`): its class


def _quiet_absl() -> None:
    # orbax reports every save and restore through absl logging at WARNING/INFO level.
    logging.getLogger("absl").setLevel(logging.ERROR)


# ------------------------------------------------------------------------------------------------- state <-> arrays
def _leaf_name(path) -> str:
    return jax.tree_util.keystr(path, simple=True, separator=".") or "root"


def state_to_arrays(state: Any) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Flatten a pytree into ``({leaf path: host array}, {leaf path: PRNG impl name})``; typed keys become key data."""
    arrays, key_impls = {}, {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]:
        name = _leaf_name(path)
        if is_key(leaf):
            key_impls[name] = str(jax.random.key_impl(leaf))
            leaf = jax.random.key_data(leaf)
        arrays[name] = np.asarray(jax.device_get(leaf))
    return arrays, key_impls


def leaf_shapes(abstract_state: Any) -> dict[str, tuple[tuple[int, ...], str]]:
    """``{leaf path: (shape, dtype)}`` of the arrays a state is saved as (key leaves as their uint32 key data)."""
    shapes = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(abstract_state)[0]:
        if is_key(leaf):
            leaf = jax.eval_shape(jax.random.key_data, leaf)
        shapes[_leaf_name(path)] = (tuple(leaf.shape), np.dtype(leaf.dtype).name)
    return shapes


def arrays_to_state(arrays: dict[str, Any], key_impls: dict[str, str], abstract_state: Any) -> Any:
    """Inverse of `state_to_arrays`: arrays placed into `abstract_state`'s structure, key data wrapped again."""
    paths, treedef = jax.tree_util.tree_flatten_with_path(abstract_state)
    leaves = []
    for path, _ in paths:
        name = _leaf_name(path)
        value = jnp.asarray(arrays[name])
        if name in key_impls:
            value = jax.random.wrap_key_data(value, impl=key_impls[name])
        leaves.append(value)
    return jax.tree_util.tree_unflatten(treedef, leaves)


def digest(arrays: dict[str, np.ndarray]) -> str:
    """SHA-256 over every array's name, shape, dtype and bytes (in name order)."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{a.shape}|{a.dtype.name}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


# ------------------------------------------------------------------------------------------------------ layout
def batched_keys(seed: int, num_seeds: int) -> jax.Array:
    """The [num_seeds] typed base keys of a run: ``split(key(seed), num_seeds)``."""
    return jax.random.split(jax.random.key(seed), num_seeds)


def abstract_state(init_fn: Callable, layout: RunLayout) -> Any:
    """Shapes and dtypes of the batched [S] `RunState` that ``vmap(init_fn)`` makes (traced only, no compile).

    Leaves are strongly typed, as restored arrays are (`init` makes them so: see `train.strong_types`).
    """
    keys = batched_keys(layout.seed, layout.num_seeds)
    return jax.eval_shape(jax.vmap(lambda key: init_fn(key, layout.config)), keys)


def layout_meta(layout: RunLayout) -> dict[str, Any]:
    meta = {"config": layout.config.to_dict(), "num_seeds": layout.num_seeds, "seed": layout.seed}
    if layout.pbt is not None:
        meta["pbt"] = layout.pbt
    if layout.custom_env is not None:
        meta["custom_env"] = layout.custom_env
    return meta


def config_differences(saved: dict[str, Any], expected: dict[str, Any]) -> list[str]:
    """Human-readable ``name: saved -> expected`` lines for every config field that differs."""
    names = sorted(set(saved) | set(expected))
    return [f"{n}: {saved.get(n, '<missing>')!r} (checkpoint) vs {expected.get(n, '<missing>')!r} (this run)"
            for n in names if saved.get(n) != expected.get(n)]


# ------------------------------------------------------------------------------------------------- the directory
def checkpoint_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / CHECKPOINT_DIRNAME


def resolve(path: str | Path) -> tuple[Path, int | None]:
    """``(checkpoints directory, step or None for the latest)`` for a run directory, its ``checkpoints`` directory, or
    one step directory ``checkpoints/<update>``."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path} does not exist (give a run directory or a checkpoint directory)")
    if (path / CHECKPOINT_DIRNAME).is_dir():
        return path / CHECKPOINT_DIRNAME, None
    if path.name.isdigit() and path.is_dir():
        return path.parent, int(path.name)
    if path.is_dir() and any(p.name.isdigit() for p in path.iterdir()):
        return path, None
    raise CheckpointError(f"{path} holds no checkpoints (expected a run directory with {CHECKPOINT_DIRNAME}/, "
                          f"or a {CHECKPOINT_DIRNAME}/<update> directory)")


class Checkpointer:
    """Saves and restores a run's batched `RunState` in ``directory`` (an orbax `CheckpointManager`).

    Saves are synchronous (`save` returns once the step directory has been renamed into place) and the newest
    `max_to_keep` steps are kept.
    """

    def __init__(self, directory: str | Path, max_to_keep: int | None = DEFAULT_MAX_TO_KEEP, read_only: bool = False):
        _quiet_absl()
        self.directory = Path(directory).resolve()
        one_of_several = jax.process_count() > 1  # orbax must not wait for the other processes
        if one_of_several and not read_only:
            self.directory.mkdir(parents=True, exist_ok=True)  # orbax refuses `create` with `active_processes`
        options = ocp.CheckpointManagerOptions(
            max_to_keep=None if read_only else max_to_keep,
            enable_async_checkpointing=False,
            create=not read_only and not one_of_several,
            read_only=read_only,
            cleanup_tmp_directories=False,  # done here, synchronously (orbax's runs in a background future)
            # with several processes only one (process 0) saves, and each process reads on its own: no barriers
            **({"multiprocessing_options": ocp.options.MultiprocessingOptions(
                primary_host=jax.process_index(), active_processes={jax.process_index()})} if one_of_several else {}),
        )
        if read_only and not self.directory.is_dir():
            raise CheckpointError(f"{self.directory} does not exist")
        if not read_only:
            remove_interrupted_saves(self.directory)
        self._manager = ocp.CheckpointManager(self.directory, options=options)

    def close(self) -> None:
        self._manager.close()

    def __enter__(self) -> Checkpointer:  # noqa: PYI034
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def steps(self) -> list[int]:
        """Finalised steps (updates), oldest first; directories of interrupted saves are not counted."""
        self._manager.reload()
        return sorted(self._manager.all_steps())

    def latest_step(self) -> int | None:
        steps = self.steps()
        return steps[-1] if steps else None

    # ------------------------------------------------------------------------------------------------------ save
    def save(self, state: Any, layout: RunLayout, step: int | None = None) -> int:
        """Save the batched [S] `state` as `step` (default: its update counter) and return the step. Blocks until
        finalised."""
        arrays, key_impls = state_to_arrays(state)
        step = int(np.asarray(arrays["updates_done"]).reshape(-1)[0]) if step is None else int(step)
        meta = {
            "format": FORMAT_VERSION,
            "purejaxppo_version": __version__,
            "jax_version": jax.__version__,
            **layout_meta(layout),
            "update": step,
            "leaves": {n: [list(a.shape), a.dtype.name] for n, a in arrays.items()},
            "key_impls": key_impls,
            "sha256": digest(arrays),
        }
        try:
            with _orbax_silenced():
                self._manager.save(
                    step,
                    args=ocp.args.Composite(state=ocp.args.StandardSave(arrays), meta=ocp.args.JsonSave(meta)),
                    force=True,
                )
                self._manager.wait_until_finished()
        except Exception as e:  # noqa: BLE001 - a full disk surfaces as OSError, ValueError or orbax's own errors
            kept = self._steps_or_none()
            raise CheckpointError(f"saving checkpoint {self.directory / str(step)} failed ({_save_failure(e)}); "
                                  f"the checkpoints saved before it are intact (updates {kept})") from None
        return step

    def _steps_or_none(self) -> list[int] | None:
        try:
            return self.steps()
        except Exception:  # noqa: BLE001
            return None

    def quarantine(self, step: int) -> Path:
        """Move the step directory aside as ``<step>.corrupt`` (kept for inspection, no longer a checkpoint)."""
        source = self.directory / str(step)
        target, i = self.directory / f"{step}.corrupt", 1
        while target.exists():
            i += 1
            target = self.directory / f"{step}.corrupt{i}"
        source.rename(target)
        self._manager.reload()
        return target

    def restore_newest_intact(self, abstract: Any, layout: RunLayout | None, warn: Callable[[str], None]
                              ) -> tuple[Any, dict]:
        """Restore the newest checkpoint that reads back intact, newest first.

        A corrupt one (`CorruptCheckpointError`) with an older one behind it is reported through `warn`, naming it,
        and moved aside (`quarantine`), and the older one is tried; the oldest one's corruption is raised. Any other
        refusal (another run's checkpoint, another version) is raised at once, since an older checkpoint of the same
        run would be refused too.
        """
        steps = self.steps()
        if not steps:
            raise CheckpointError(f"no complete checkpoint in {self.directory}")
        for i in range(len(steps) - 1, -1, -1):
            try:
                return self.restore(abstract, layout, steps[i])
            except CorruptCheckpointError as e:
                if i == 0:
                    raise  # nothing older to fall back to: the oldest stays where it is
                moved = self.quarantine(steps[i])
                warn(f"warning: {e}. Moved it to {moved.name}; falling back to the checkpoint of update "
                     f"{steps[i - 1]}")
        raise AssertionError("unreachable")

    # --------------------------------------------------------------------------------------------------- restore
    def read_meta(self, step: int | None = None) -> dict[str, Any]:
        """The JSON metadata of `step` (default: the latest), checked for format and version."""
        step = self._pick(step)
        where = self.directory / str(step)
        try:
            meta = self._manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())).meta
        except Exception as e:  # noqa: BLE001 - orbax raises many kinds; all mean "unreadable"
            raise CorruptCheckpointError(f"checkpoint {where} is corrupt or truncated: its metadata cannot be read "
                                  f"({type(e).__name__}: {_short(e)})") from None
        if not isinstance(meta, dict) or "format" not in meta:
            raise CheckpointError(f"checkpoint {where} is not a purejaxppo checkpoint (no format in its metadata)")
        if meta["format"] != FORMAT_VERSION or meta.get("purejaxppo_version") != __version__:
            raise CheckpointError(
                f"checkpoint {where} was written by purejaxppo {meta.get('purejaxppo_version')} (checkpoint format "
                f"{meta['format']}); this is purejaxppo {__version__} (format {FORMAT_VERSION}). "
                "Resume or evaluate it with the version that wrote it."
            )
        missing = [k for k in META_KEYS if k not in meta]
        if missing:
            raise CorruptCheckpointError(f"checkpoint {where} is corrupt: its metadata lacks {missing}")
        meta["step"] = step
        return meta

    def restore(self, abstract: Any, layout: RunLayout | None = None, step: int | None = None) -> tuple[Any, dict]:
        """Restore `step` (default: the latest) into `abstract`'s structure, after checking it fits.

        Args:
          abstract: the expected batched state (`abstract_state`), ShapeDtypeStructs or arrays.
          layout: the run being resumed; its config, seed count and seed must equal the checkpoint's (None: skip).
          step: which update to restore.

        Returns:
          ``(state, meta)``.
        """
        meta = self.read_meta(step)
        where = self.directory / str(meta["step"])
        if layout is not None:
            expected = layout_meta(layout)
            diffs = config_differences(meta.get("config", {}), expected["config"])
            diffs += [f"{k}: {meta.get(k)!r} (checkpoint) vs {expected.get(k)!r} (this run)"
                      for k in ("num_seeds", "seed", "pbt", "custom_env") if meta.get(k) != expected.get(k)]
            if diffs:
                raise CheckpointError(f"checkpoint {where} belongs to a different run: " + "; ".join(diffs))
        expected_shapes = leaf_shapes(abstract)
        saved_shapes = {n: (tuple(s), d) for n, (s, d) in meta["leaves"].items()}
        if saved_shapes != expected_shapes:
            raise CheckpointError(f"checkpoint {where} does not fit this run's training state: "
                                  + "; ".join(shape_differences(saved_shapes, expected_shapes)))
        target = {n: jax.ShapeDtypeStruct(tuple(s), np.dtype(d)) for n, (s, d) in saved_shapes.items()}
        try:
            restored = self._manager.restore(
                meta["step"], args=ocp.args.Composite(state=ocp.args.StandardRestore(target))
            ).state
            arrays = {n: np.asarray(v) for n, v in restored.items()}
        except Exception as e:  # noqa: BLE001
            raise CorruptCheckpointError(f"checkpoint {where} is corrupt or truncated: its arrays cannot be read "
                                  f"({type(e).__name__}: {_short(e)})") from None
        if digest(arrays) != meta["sha256"]:
            raise CorruptCheckpointError(
                f"checkpoint {where} is corrupt: its arrays do not match the digest saved with them")
        return arrays_to_state(arrays, meta["key_impls"], abstract), meta

    def _pick(self, step: int | None) -> int:
        steps = self.steps()
        if not steps:
            raise CheckpointError(f"no complete checkpoint in {self.directory}")
        if step is None:
            return steps[-1]
        if step not in steps:
            raise CheckpointError(f"no checkpoint for update {step} in {self.directory}; available: {steps}")
        return step


def remove_interrupted_saves(directory: Path) -> None:
    """Remove the temporary directories of saves that died before their rename (``<update>.orbax-checkpoint-tmp-*``).

    Done before the manager is built and before anything else reads the directory: orbax's own clean-up runs in a
    background future that only a later save waits for, so a session that only restores could end with it
    unfinished.
    """
    for path in directory.glob(f"*{TMP_MARKER}*"):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def _orbax_silenced():
    """No log records and no thread tracebacks from orbax while saving: a failed save is reported once, by `save`.

    After a failure the silence stays: orbax's writer tasks and threads report the same failure again later (asyncio's
    "Task exception was never retrieved", "Event loop is closed" from tensorstore's callbacks), after `save` raised.
    """
    loggers = [logging.getLogger(n) for n in ("absl", "orbax", "asyncio")]
    levels = [lg.level for lg in loggers]
    thread_hook, unraisable_hook = threading.excepthook, sys.unraisablehook
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    threading.excepthook = lambda args: None
    sys.unraisablehook = _without_closed_loop_reports(unraisable_hook)
    try:
        yield
    except BaseException:
        threading.excepthook = thread_hook
        raise
    threading.excepthook, sys.unraisablehook = thread_hook, unraisable_hook
    for lg, level in zip(loggers, levels):
        lg.setLevel(level)


def _save_failure(e: Exception) -> str:
    """Why a save failed, in short: a full disk (however orbax and tensorstore report it) is named as such."""
    text = str(e)
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    if "RESOURCE_EXHAUSTED" in text or "No space left" in text:
        return "No space left on device"
    return f"{type(e).__name__}: {_short(e)}"


def _without_closed_loop_reports(hook: Callable) -> Callable:
    """`hook`, minus the "Event loop is closed" reports that orbax's writer threads leave after a failed save."""
    if getattr(hook, "_drops_closed_loop", False):
        return hook

    def filtered(unraisable) -> None:
        value = unraisable.exc_value
        if not (isinstance(value, RuntimeError) and str(value) == "Event loop is closed"):
            hook(unraisable)

    filtered._drops_closed_loop = True
    return filtered


def _short(e: Exception, limit: int = 300) -> str:
    text = " ".join(str(e).split())
    return text if len(text) <= limit else text[:limit] + "..."


def shape_differences(saved: dict, expected: dict) -> list[str]:
    out = [f"missing leaf {n}" for n in sorted(set(expected) - set(saved))]
    out += [f"unexpected leaf {n}" for n in sorted(set(saved) - set(expected))]
    out += [f"{n}: shape/dtype {saved[n]} (checkpoint) vs {expected[n]} (this run)"
            for n in sorted(set(saved) & set(expected)) if saved[n] != expected[n]]
    return out[:8] + ([f"... and {len(out) - 8} more"] if len(out) > 8 else [])
