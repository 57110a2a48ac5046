"""A trained policy in and out of a run directory: `load_policy` restores one seed's policy from a checkpoint alone,
ready to act, evaluate or export; `save_run` writes a `make_train` (or `sweep`) result as a run directory that
`load_policy` and the command line read. The checkpoint format itself is `purejaxppo.runs.checkpoint`'s.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from purejaxppo.compiler import jit
from purejaxppo.config import PPOConfig
from purejaxppo.core.normalize import normalize_obs
from purejaxppo.models.policies import act
from purejaxppo.runs.checkpoint import (
    Checkpointer,
    CheckpointError,
    RunLayout,
    abstract_state,
    checkpoint_dir,
    leaf_shapes,
    resolve,
    shape_differences,
)
from purejaxppo.runs.logs import CONFIG_FILE, METRICS_FILE, RUN_FILE, append_records, metric_records, write_json
from purejaxppo.scale.population import Space, abstract_population
from purejaxppo.training.evaluation import play_episodes, policy_action
from purejaxppo.training.train import RunState, Setup, TrainFunctions, TrainOutput, make_train_functions
from purejaxppo.version import __version__


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
                         + "; ".join(shape_differences(given, expected)).replace("(checkpoint)", "(state)") + hint)
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
