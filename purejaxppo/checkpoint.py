"""Checkpoints of a whole training run (orbax-checkpoint), checked on the way back in, and `load_policy`.

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
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

from purejaxppo.compiler import jit
from purejaxppo.config import PPOConfig
from purejaxppo.evaluation import play_episodes, policy_action
from purejaxppo.logs import CONFIG_FILE, METRICS_FILE, RUN_FILE, append_records, metric_records, write_json
from purejaxppo.normalize import normalize_obs
from purejaxppo.policies import act
from purejaxppo.population import Space, abstract_population
from purejaxppo.train import RunState, Setup, TrainFunctions, TrainOutput, make_train_functions
from purejaxppo.version import __version__

FORMAT_VERSION = 2
CHECKPOINT_DIRNAME = "checkpoints"
DEFAULT_MAX_TO_KEEP = 2
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


def _is_key(x) -> bool:
    return jnp.issubdtype(x.dtype, jax.dtypes.prng_key)


def state_to_arrays(state: Any) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Flatten a pytree into ``({leaf path: host array}, {leaf path: PRNG impl name})``; typed keys become key data."""
    arrays, key_impls = {}, {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]:
        name = _leaf_name(path)
        if _is_key(leaf):
            key_impls[name] = str(jax.random.key_impl(leaf))
            leaf = jax.random.key_data(leaf)
        arrays[name] = np.asarray(jax.device_get(leaf))
    return arrays, key_impls


def leaf_shapes(abstract_state: Any) -> dict[str, tuple[tuple[int, ...], str]]:
    """``{leaf path: (shape, dtype)}`` of the arrays a state is saved as (key leaves as their uint32 key data)."""
    shapes = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(abstract_state)[0]:
        if _is_key(leaf):
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
        options = ocp.CheckpointManagerOptions(
            max_to_keep=None if read_only else max_to_keep,
            enable_async_checkpointing=False,
            create=not read_only,
            read_only=read_only,
            cleanup_tmp_directories=not read_only,
        )
        if read_only and not self.directory.is_dir():
            raise CheckpointError(f"{self.directory} does not exist")
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
                                  + "; ".join(_shape_differences(saved_shapes, expected_shapes)))
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


def _shape_differences(saved: dict, expected: dict) -> list[str]:
    out = [f"missing leaf {n}" for n in sorted(set(expected) - set(saved))]
    out += [f"unexpected leaf {n}" for n in sorted(set(saved) - set(expected))]
    out += [f"{n}: shape/dtype {saved[n]} (checkpoint) vs {expected[n]} (this run)"
            for n in sorted(set(saved) & set(expected)) if saved[n] != expected[n]]
    return out[:8] + ([f"... and {len(out) - 8} more"] if len(out) > 8 else [])


# ----------------------------------------------------------------------------------------------------- load_policy
class LoadedPolicy(NamedTuple):
    """A trained policy restored from a checkpoint alone (one seed of the run), feed-forward or recurrent.

    act: ``act(carry, obs, reset=None, key=None, mask=None) -> (carry, action)`` for raw observations
      ``[B, *obs_shape]`` as the wrapped environment gives them (normalisation is applied inside); `carry` is the
      policy's memory (``initial_carry(B)`` at the start, ``()`` for a feed-forward policy), `reset` bool[B] marks
      observations that start an episode (default: none). Greedy unless loaded with ``deterministic=False``.
    initial_carry: ``initial_carry(batch_size) -> carry``.
    policy: ``policy(obs, key=None, mask=None) -> action`` for ``[*obs_shape]`` or ``[B, *obs_shape]``, feed-forward
      policies only (a recurrent one needs its carry: use `act`).
    evaluate: ``evaluate(num_episodes=32, key=None, greedy=None) -> returns [num_episodes]`` (greedy=None: as loaded).
    config, params, obs_stats: the run's config and this seed's parameters and observation statistics.
    setup: the run's `train.Setup` (``setup.env``: the wrapped environment, its params and spec; ``setup.policy``).
    update: the update the checkpoint was taken at.
    """

    act: Callable
    initial_carry: Callable
    policy: Callable
    evaluate: Callable
    config: PPOConfig
    params: Any
    obs_stats: Any
    setup: Setup
    update: int


def restore_run_state(path: str | Path, step: int | None = None, env=None, env_params=None
                      ) -> tuple[Any, dict, TrainFunctions]:
    """``(batched [S] RunState, meta, TrainFunctions)`` from a run or checkpoint directory alone; a run trained on an
    environment object (`save_run` with ``env=``) needs that object again as `env` (and `env_params` unless they
    were its defaults)."""
    directory, resolved_step = resolve(path)
    with Checkpointer(directory, read_only=True) as ckpt:
        meta = ckpt.read_meta(step if step is not None else resolved_step)
        where = directory / str(meta["step"])
        try:
            config = PPOConfig.from_dict(meta["config"])
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"checkpoint {where} holds an invalid config: {e}") from None
        custom = meta.get("custom_env")
        if custom is not None and env is None:
            raise CheckpointError(
                f"checkpoint {where} was trained on a custom environment ({custom}), not on config.env_name "
                f"{config.env_name!r}, and a checkpoint cannot rebuild it: pass it, load_policy(path, "
                f"env={custom.rsplit('.', 1)[-1]}(...), env_params=...) (env_params: unless its defaults)")
        layout = RunLayout(config, int(meta["num_seeds"]), int(meta["seed"]), meta.get("pbt"), custom)
        fns = make_train_functions(config, env, env_params)
        if layout.pbt is None:
            state, meta = ckpt.restore(abstract_state(fns.init, layout), layout, meta["step"])
        else:  # a `pbt` run: its members are the seeds
            state, meta = ckpt.restore(abstract_population_of(layout), layout, meta["step"])
            state = state.members
    return state, meta, fns


def abstract_population_of(layout: RunLayout) -> Any:
    """The `population.PopulationState` shapes a PBT run's checkpoint restores into (`layout.pbt` set)."""
    space = Space.from_json(layout.pbt["search"])
    return abstract_population(layout.config, space.shape(), layout.num_seeds, int(layout.pbt["ready_every"]))


def check_finite_params(params, path: str | Path, seed_index: int) -> None:
    """Raise a `CheckpointError` if one seed's restored parameters hold NaN or infinite values."""
    bad = sum(int(np.sum(~np.isfinite(np.asarray(x)))) for x in jax.tree.leaves(params))
    if bad:
        raise CheckpointError(f"checkpoint {path} holds {bad} non-finite parameter value(s) for seed {seed_index}: "
                              "its training diverged, so there is no policy to evaluate")


def load_policy(path: str | Path, seed_index: int = 0, deterministic: bool = True, step: int | None = None,
                env=None, env_params=None) -> LoadedPolicy:
    """Restore one seed's policy from a run directory or a checkpoint directory, with nothing else needed (but the
    environment object, for a run trained on your own environment).

    Args:
      path: a run directory (its latest checkpoint), its ``checkpoints`` directory, or ``checkpoints/<update>``.
      seed_index: which of the run's seeds, in ``[0, num_seeds)``.
      deterministic: greedy actions (the distribution's mode) if True, sampled otherwise.
      step: a specific update to load (default: the latest, or the one `path` names).
      env, env_params: the environment the run trained on, when it was your own object (`save_run` with ``env=``;
        loading such a run without it raises a `CheckpointError` saying so), and its params (None: its defaults).
        The policy's `evaluate` and `setup.env` then step this environment.

    Returns:
      A `LoadedPolicy`; ``act(carry, obs) -> (carry, action)``, and ``policy(obs) -> action`` when feed-forward.
    """
    state, meta, fns = restore_run_state(path, step, env, env_params)
    num_seeds = int(meta["num_seeds"])
    if not 0 <= seed_index < num_seeds:
        raise ValueError(f"seed_index must be in [0, {num_seeds}) for this run, got {seed_index}")
    one = jax.tree.map(lambda x: x[seed_index], state)
    config, setup = PPOConfig.from_dict(meta["config"]), fns.setup
    params, obs_stats = one.params, one.obs_stats
    check_finite_params(params, path, seed_index)

    @jax.jit
    def _act(carry, obs, reset, key, mask):
        obs = normalize_obs(obs_stats, obs, config.obs_clip, config.normalize_observations)
        carry, pi = act(setup.policy, params, carry, obs, reset, mask)
        return carry, policy_action(pi, key, deterministic)

    def act_fn(carry, obs, reset=None, key: jax.Array | None = None, mask=None):
        obs = jnp.asarray(obs)
        reset = jnp.zeros(obs.shape[:1], bool) if reset is None else jnp.asarray(reset, bool)
        return _act(carry, obs, reset, jax.random.key(0) if key is None else key, mask)

    def policy(obs, key: jax.Array | None = None, mask=None):
        if setup.policy.recurrent:
            raise ValueError("this run's policy is recurrent: it needs its memory between steps. Use "
                             "LoadedPolicy.act(carry, obs, reset) starting from LoadedPolicy.initial_carry(batch_size)")
        obs = jnp.asarray(obs)
        single = obs.ndim == len(setup.env.spec.obs_shape)
        batch = obs[None] if single else obs
        mask = None if mask is None else (jnp.asarray(mask)[None] if single else jnp.asarray(mask))
        _, action = act_fn((), batch, key=key, mask=mask)
        return action[0] if single else action

    def evaluate(num_episodes: int = 32, key: jax.Array | None = None, greedy: bool | None = None):
        greedy = deterministic if greedy is None else greedy
        play = jit(lambda k: play_episodes(setup.env, setup.policy, params, obs_stats, k, config, num_episodes,
                                           greedy))
        return play(jax.random.key(0) if key is None else key)

    return LoadedPolicy(act_fn, setup.policy.initial_carry, policy, evaluate, config, params, obs_stats, setup,
                        int(meta["update"]))


# -------------------------------------------------------------------------------------------------------- save_run
def custom_env_name(env) -> str:
    """``"module.Class"`` of an environment object: what a run trained on it records (`RunLayout.custom_env`)."""
    return f"{type(env).__module__}.{type(env).__qualname__}"


def save_run(run_dir: str | Path, config: PPOConfig, state: RunState, seed: int = 0, num_seeds: int | None = None,
             env=None, env_params=None, metrics: dict[str, Any] | None = None) -> Path:
    """Save a `make_train` (or `sweep`) result as a run directory that `load_policy`, ``purejaxppo eval``,
    ``purejaxppo export``, ``plot`` and ``compare`` read, as they read a ``purejaxppo train`` run.

    It writes ``config.json``, ``run.json``, one checkpoint ``checkpoints/<update>/`` of `state` and, with
    `metrics`, ``metrics.jsonl``. A run trained on your own environment object records the object's class, and
    loading it then needs the object again: ``load_policy(run_dir, env=..., env_params=...)`` (the command line
    cannot rebuild it, and says so).

    Args:
      run_dir: a new directory (or an empty one); a directory that holds a run already is refused.
      config: the config the state was trained with.
      state: the final state, ``out.state``: one seed's (``make_train(config)(key)``) or a batch of seeds
        (``jax.vmap``, leading axis S).
      seed: the base seed recorded in run.json (the seeds' keys were ``split(key(seed), S)`` as the command line
        makes them, or whatever you used: the number is only a record).
      num_seeds: S; None reads it from `state` (1 for an unbatched state).
      env, env_params: the environment object the state was trained on (``make_train(config, env=...)``), if not
        `config.env_name`, and its params (None: its defaults; pass them to `load_policy` again if not).
      metrics: ``out.metrics`` (``{name: [U]}`` or ``[S, U]``), to write metrics.jsonl (for ``purejaxppo plot``).

    Returns:
      `run_dir`, as a `Path`.

    Raises:
      ValueError: a state that is not a `RunState`, or does not fit `config` (and `env`), a seed count that
        disagrees with it, a `run_dir` that holds a run.
    """
    if isinstance(state, TrainOutput):
        raise ValueError("save_run takes the training state, out.state, not the whole TrainOutput (pass "
                         "metrics=out.metrics to save the metrics too)")
    if not isinstance(state, RunState):
        raise ValueError(f"save_run needs the RunState of a make_train result (out.state), got {type(state).__name__}")
    run_dir = Path(run_dir)
    if run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
        raise ValueError(f"save_run: {run_dir} exists and is not an empty directory; save into a new one")
    batched = np.ndim(state.updates_done) == 1
    found = int(np.shape(state.updates_done)[0]) if batched else 1
    if num_seeds is not None and num_seeds != found:
        raise ValueError(f"save_run: num_seeds={num_seeds}, but the state holds {found} seed(s) "
                         f"(updates_done has shape {tuple(np.shape(state.updates_done))})")
    if not batched:
        state = jax.tree.map(lambda x: jnp.asarray(x)[None], state)
    layout = RunLayout(config, found, int(seed), None, None if env is None else custom_env_name(env))
    fns = make_train_functions(config, env, env_params)
    expected, given = leaf_shapes(abstract_state(fns.init, layout)), leaf_shapes(state)
    if given != expected:
        hint = ("" if env is not None else f"; trained on your own environment? pass it as env= (the state does not "
                f"fit config.env_name {config.env_name!r})")
        raise ValueError("save_run: the state does not fit this config's run: "
                         + "; ".join(_shape_differences(given, expected)).replace("(checkpoint)", "(state)") + hint)
    updates = np.asarray(state.updates_done).reshape(-1)
    if not np.all(updates == updates[0]):
        raise ValueError(f"save_run: the seeds are at different updates {sorted(set(updates.tolist()))}")
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(run_dir / CONFIG_FILE, config.to_dict())
    write_json(run_dir / RUN_FILE, {
        "run_id": uuid.uuid4().hex[:12], "env_name": config.env_name, "num_seeds": found, "seed": int(seed),
        "checkpoint_every": int(updates[0]), "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "purejaxppo_version": __version__, "jax_version": jax.__version__, "saved_by": "save_run",
        **({} if layout.custom_env is None else {"custom_env": layout.custom_env}),
    })
    if metrics is not None:
        columns = {k: np.asarray(v) for k, v in metrics.items()}
        columns = {k: (v[None] if not batched else v).T for k, v in columns.items()}  # [U, S]
        num_updates = next(iter(columns.values())).shape[0]
        columns["update"] = np.broadcast_to(np.arange(1, num_updates + 1)[:, None], (num_updates, found))
        append_records(run_dir / METRICS_FILE, metric_records(columns))
    with Checkpointer(checkpoint_dir(run_dir)) as ckpt:
        ckpt.save(state, layout)
    return run_dir
