"""`make_train(config)`: the whole PPO run as one jitted program.

    train(key) = scan(update, init(key), length=num_updates)
    update     = rollout -> values + GAE -> epochs(minibatches(loss -> grads -> clip -> Adam)) -> metrics [-> eval]

The static parts of a run (the environment, its params and spec, the policy, the device axis) are built once by
`make_setup` and held in a `Setup`. `init`, `update` and `run` are pure functions of the setup, the state and `hp`,
the run's config: its float leaves may be traced (a sweep vmaps over them), its static fields must equal the setup's.
Nothing closes over a second copy of the floats, so every part of a sweep cell, its evaluation included, uses the
cell's own values. ``jax.vmap(train)`` trains many seeds in one program.

`make_train_functions` binds the pieces to a setup so the command line can train in chunks of updates and checkpoint
between them: ``run(state, n)`` from a restored state gives bit-identical results to an uninterrupted run, because
every random key is derived from the base key and the update counter (`purejaxppo.core.streams`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import struct
from jax.flatten_util import ravel_pytree

from purejaxppo.core import streams
from purejaxppo.training.batch import fit, prepare_batch, to_samples
from purejaxppo.config import HYPERPARAMETERS, PPOConfig, with_hyperparameters
from purejaxppo.envs.make import make_env
from purejaxppo.envs.pools import HostPool, HostProgram, check_host_pool_placement
from purejaxppo.envs.spec import Env
from purejaxppo.training.evaluation import play_episodes
from purejaxppo.training.metrics import update_metrics
from purejaxppo.core.normalize import RewardNormState, RunningStats, update_stats
from purejaxppo.core.optim import make_optimizer
from purejaxppo.models.policies import Policy, make_policy, with_flat_params
from purejaxppo.training.rollout import RolloutState, collect, initial_rollout_state


class RunState(struct.PyTreeNode):
    """Everything a run needs to continue: checkpoint this and training resumes exactly.

    params: the policy's parameters (a pytree). opt_state: the optax state (step count, and Adam's moments as flat
      vectors over ``ravel_pytree(params)``: the optimiser steps one buffer, not one per layer).
    rollout: where the next rollout continues from (environment states, raw observations [N, ...], done flags [N],
      the policy's carry). obs_stats: observation `RunningStats`. reward_state: `RewardNormState`.
    key: the run's base key. updates_done: [] int32, the number of updates done so far.
    """

    params: Any
    opt_state: Any
    rollout: RolloutState
    obs_stats: RunningStats
    reward_state: RewardNormState
    key: jax.Array
    updates_done: jax.Array


class TrainOutput(NamedTuple):
    """The final `RunState` and the metrics, each ``[num_updates]`` (``[..., num_updates]`` under vmap)."""

    state: RunState
    metrics: dict[str, jax.Array]


class Setup(NamedTuple):
    """The static parts of a run, built once from a config's static fields (`make_setup`).

    config: the config it was built for (its float leaves are the defaults of `TrainFunctions`).
    env: the wrapped environment, its params and spec (`envs.Env`).
    policy: the policy (`policies.Policy`).
    axis_name: None, or the `shard_map` axis the environments are split over (data parallelism).
    """

    config: PPOConfig
    env: Env
    policy: Policy
    axis_name: Any = None


def make_setup(config: PPOConfig, env=None, env_params=None, axis_name=None) -> Setup:
    """Build the environment (`config.env_name`, or the given `env`) and the policy for `config`.

    A host pool (``"envpool:..."``, ``"gymnasium:..."``, a `pools.HostPool`) trains on one device (no `axis_name`)
    and evaluates after training only (``eval_every`` must be 0: evaluation needs its own pool).
    """
    if not isinstance(config, PPOConfig):
        raise TypeError(f"make_train needs a PPOConfig, got {type(config).__name__}")
    env = make_env(config.env_name, config.env_kwargs_dict, env, env_params)
    check_host_pool_placement(env, "make_train", axis_name=axis_name)
    if isinstance(env, HostPool) and config.eval_every > 0:
        raise ValueError(f"PPOConfig.eval_every must be 0 for {env.name}, a host environment pool (got "
                         f"{config.eval_every}): evaluate after training (evaluate, load_policy(...).evaluate), on its "
                         "own pool")
    policy = make_policy(config, env.spec)
    if env.spec.pool_envs and policy.recurrent:
        raise ValueError(f"PPOConfig.network names a recurrent policy, and {env.name} is asynchronous: a recurrent "
                         "policy needs each environment's steps in order within a sequence; use a feed-forward "
                         "network, or drop pool_envs for the sync pool")
    return Setup(config, env, policy, axis_name)


def optimizer(hp: PPOConfig) -> optax.GradientTransformation:
    """Adam for the run's config, with its learning-rate schedule (`optim.make_optimizer`).

    It steps the parameters as one flat vector (``ravel_pytree(params)``): clipping by the global norm and Adam are
    then a few kernels per minibatch step rather than a few per layer, which made the CPU's epochs about 11% faster.
    """
    return make_optimizer(hp.learning_rate, hp.adam_eps, hp.anneal_lr, hp.num_updates,
                          hp.update_epochs * hp.num_minibatches)


def _check_static(setup: Setup, hp: PPOConfig) -> None:
    if jax.tree_util.tree_structure(hp) != jax.tree_util.tree_structure(setup.config):
        raise ValueError("the config passed to a train function must have the same static fields "
                         "(sizes, network, env) as the one given to make_train")
    shaped = {name: jnp.shape(v) for name, v in hp.hyperparameters.items() if jnp.ndim(v)}
    if shaped:
        raise ValueError(f"a train function's config holds one value per hyperparameter; got arrays of shapes "
                         f"{shaped}: for a batch of values, jax.vmap the train function over them (or use sweep)")


def strong_types(tree):
    """`tree` with weakly typed leaves (e.g. gymnax's ``time=0``) made strongly typed, dtype unchanged.

    `init` returns strongly typed states. The states `update` returns often are (Freeway-MinAtar's step turns its weak
    reset values strong), and so are states restored from a checkpoint; all three then share one abstract signature,
    so a jitted `update` or chunk compiles once, not again on its second call.
    """

    def strong(x):
        return x if streams.is_key(x) else jax.lax.convert_element_type(x, x.dtype)

    return jax.tree.map(strong, tree)


def init(setup: Setup, key: jax.Array, hp: PPOConfig) -> RunState:
    """A new run's state: reset environments, initial parameters and optimiser state, fresh statistics."""
    _check_static(setup, hp)
    streams.check_key(key)
    rollout = initial_rollout_state(setup.env, setup.policy, streams.stream(key, streams.RESET), hp.num_envs,
                                    setup.axis_name)
    params = setup.policy.init(streams.stream(key, streams.INIT), rollout.obs)
    obs_stats = RunningStats.create(setup.env.spec.obs_shape)
    if hp.normalize_observations:  # started from the first observations
        obs_stats = update_stats(obs_stats, rollout.obs, setup.axis_name)
    return strong_types(RunState(
        params=params, opt_state=optimizer(hp).init(ravel_pytree(params)[0]), rollout=rollout, obs_stats=obs_stats,
        reward_state=RewardNormState.create(setup.env.spec.pool_envs or hp.num_envs), key=key,
        updates_done=jnp.zeros((), jnp.int32),
    ))


def restart_envs(setup: Setup, state: RunState, hp: PPOConfig) -> RunState:
    """`state` with its environments restarted: what resuming a checkpoint does on a host pool, whose environments
    live on the host and cannot be saved with the run.

    The environments are reset with the key ``stream(key, RESET, u)``, u = ``state.updates_done`` (a host pool's seed
    is then ``randint(split(that key, N)[0], [0, 2**30))``), so a run resumed at update u restarts the same way every
    time. The in-flight episodes are dropped: their partial returns never reach the metrics, and every policy carry
    restarts. The parameters, optimiser state, observation statistics, reward statistics, key and update counter are
    kept as they are; only the reward normaliser's per-environment discounted return, which belongs to the dropped
    episodes, starts again from 0, as after an episode's end.
    """
    _check_static(setup, hp)
    rollout = initial_rollout_state(setup.env, setup.policy,
                                    streams.stream(state.key, streams.RESET, state.updates_done), hp.num_envs,
                                    setup.axis_name)
    reward_state = state.reward_state.replace(
        discounted_return=jnp.zeros_like(state.reward_state.discounted_return))
    return strong_types(state.replace(rollout=rollout, reward_state=reward_state))


def eval_return(setup: Setup, state: RunState, hp: PPOConfig) -> jax.Array:
    """The mean greedy return of ``hp.eval_episodes`` episodes when ``state.updates_done % hp.eval_every == 0``, else
    NaN. Its key is ``stream(key, EVAL, updates_done)``, a stream training never reads."""
    key = streams.stream(state.key, streams.EVAL, state.updates_done)
    return jax.lax.cond(
        state.updates_done % hp.eval_every == 0,
        lambda: play_episodes(setup.env, setup.policy, state.params, state.obs_stats, key, hp,
                              hp.eval_episodes).mean(),
        lambda: jnp.asarray(jnp.nan, jnp.float32),
    )


def learn(setup: Setup, params, opt_state, samples, key: jax.Array, hp: PPOConfig):
    """The epochs of one update (`batch.fit`), the optimiser stepping the parameters as one flat vector.

    Returns ``(params, opt_state, UpdateInfo)``; `key` is the update's shuffle key.
    """
    flat, unravel = ravel_pytree(params)
    flat, opt_state, info = fit(with_flat_params(setup.policy, unravel), flat, opt_state, samples, key, hp,
                                optimizer(hp), setup.axis_name)
    return unravel(flat), opt_state, info


def update(setup: Setup, state: RunState, hp: PPOConfig) -> tuple[RunState, dict[str, jax.Array]]:
    """One PPO update: rollout, batch (values and GAE), epochs of minibatch steps, metrics, optional evaluation."""
    _check_static(setup, hp)
    policy, axis, u = setup.policy, setup.axis_name, state.updates_done
    transition, rollout = collect(
        policy, state.params, setup.env, hp, state.obs_stats, state.rollout,
        streams.stream(state.key, streams.ACTIONS, u), streams.stream(state.key, streams.ENV, u), axis,
    )
    batch, obs_stats, reward_state = prepare_batch(
        policy, state.params, hp, transition, state.rollout.carry, state.obs_stats, state.reward_state, axis
    )
    params, opt_state, info = learn(setup, state.params, state.opt_state,
                                    to_samples(batch, state.rollout.carry, policy.recurrent),
                                    streams.stream(state.key, streams.SHUFFLE, u), hp)
    new_state = state.replace(params=params, opt_state=opt_state, rollout=rollout, obs_stats=obs_stats,
                              reward_state=reward_state, updates_done=u + 1)
    metrics = update_metrics(hp, u, transition, info, batch.value, batch.target, params, axis)
    if hp.eval_every > 0:
        metrics["eval_return"] = eval_return(setup, new_state, hp)
    return new_state, metrics


def run(setup: Setup, state: RunState, hp: PPOConfig, num_updates: int | None = None):
    """`update` scanned `num_updates` times (default ``hp.num_updates``, static). Returns ``(state, metrics [n])``."""
    n = hp.num_updates if num_updates is None else num_updates
    return jax.lax.scan(lambda s, _: update(setup, s, hp), state, None, length=n)


class TrainFunctions(NamedTuple):
    """The pieces of a run bound to one `Setup`, all pure (jit them as you need); `hp` defaults to the setup's config.

    init(key, hp=config) -> RunState
    update(state, hp=config) -> (RunState, metrics of one update)
    run(state, hp=config, num_updates=None) -> (RunState, metrics [num_updates]); `num_updates` must be static.
    """

    init: Callable
    update: Callable
    run: Callable
    setup: Setup


def make_train_functions(config: PPOConfig, env=None, env_params=None, axis_name: str | None = None) -> TrainFunctions:
    """Build the setup for `config` and return the pieces of a run bound to it.

    `axis_name` (default None: one device) is for data parallelism (`purejaxppo.scale.parallel`): the functions then run
    inside `shard_map` over that axis, `config.num_envs` is the number of environments *per device*, and environment
    keys, gradients (`lax.pmean`), advantage and normalisation statistics and the metrics are global.
    """
    setup = make_setup(config, env, env_params, axis_name)

    def bound_init(key: jax.Array, hp: PPOConfig = config) -> RunState:
        return init(setup, key, hp)

    def bound_update(state: RunState, hp: PPOConfig = config):
        return update(setup, state, hp)

    def bound_run(state: RunState, hp: PPOConfig = config, num_updates: int | None = None):
        return run(setup, state, hp, num_updates)

    return TrainFunctions(bound_init, bound_update, bound_run, setup)


def make_train(config: PPOConfig, env=None, env_params=None) -> Callable[..., TrainOutput]:
    """A jitted ``train(key, hparams=None) -> TrainOutput`` for `config`'s whole budget.

    Args:
      config: the run's `PPOConfig`.
      env, env_params: any environment with gymnax 1.0's API (None builds `config.env_name`).

    `train(key)` trains one seed; ``jax.jit(jax.vmap(train))(keys)`` trains many in one program. The optional second
    argument is a config with the same static fields whose float leaves replace `config`'s (what `sweep` vmaps over).
    ``train(key, schedule={name: [S] values})`` trains with a hyperparameter schedule instead: S equal segments, each
    with its row (`run_schedule`; what a `pbt` member's schedule replays as, `PBTResult.schedule`).
    Metrics are ``[num_updates]`` arrays named in `metrics.METRIC_NAMES` (plus "eval_return" when eval_every > 0).

    On a host pool (``"envpool:<task>"``, ``"gymnasium:<id>"``, `pools.HostPool`) `train` is a `pools.HostProgram`:
    the same jitted function (``jax.vmap(train)`` merges the seeds into one pool, see `purejaxppo.envs.pools.base`),
    which called directly waits for its result and reports a host failure in one line (`pools.HostEnvError`).
    """
    setup = make_setup(config, env, env_params)

    def train(key: jax.Array, hparams: PPOConfig | None = None, schedule: dict | None = None) -> TrainOutput:
        hp = config if hparams is None else hparams
        if schedule is None:
            return TrainOutput(*run(setup, init(setup, key, hp), hp))
        return TrainOutput(*run_schedule(setup, key, hp, schedule))

    if isinstance(setup.env, HostPool):
        return HostProgram(train, setup.env)
    return jax.jit(train)  # plain: users nest it (jax.jit(jax.vmap(train)))


def run_schedule(setup: Setup, key: jax.Array, hp: PPOConfig, schedule: dict) -> tuple[RunState, dict]:
    """A whole run whose hyperparameters follow `schedule` ``{name: [S] values}``: the S segments of
    ``num_updates / S`` updates each train with their row (what a `pbt` member's schedule replays as; fields not in
    `schedule` keep `hp`'s values). Returns ``(state, metrics [num_updates])``.

    The values are traced here, so their ranges cannot be checked: `population.replay` checks them first.
    """
    if not isinstance(schedule, Mapping):
        raise ValueError(f"schedule must map hyperparameter names to 1-d arrays, got {type(schedule).__name__}")
    schedule = {name: jnp.asarray(v) for name, v in schedule.items()}  # lists (of traced numbers) as arrays
    lengths = {jnp.shape(v) for v in schedule.values()}
    if not schedule or len(lengths) != 1 or len(next(iter(lengths))) != 1:
        raise ValueError(f"schedule must map hyperparameter names to 1-d arrays of one length, got shapes {lengths}")
    unknown = [n for n in schedule if n not in HYPERPARAMETERS]
    if unknown:
        raise ValueError(f"schedule names {unknown} are not float hyperparameters; these are {list(HYPERPARAMETERS)}")
    segments = next(iter(lengths))[0]
    if segments < 1 or hp.num_updates % segments:
        raise ValueError(f"num_updates ({hp.num_updates}) is not a multiple of the schedule's {segments} segments")
    first = with_hyperparameters(hp, {name: v[0] for name, v in schedule.items()})
    state = init(setup, key, first)

    def segment(state, values):
        return run(setup, state, with_hyperparameters(hp, values), hp.num_updates // segments)

    state, metrics = jax.lax.scan(segment, state, schedule)
    return state, jax.tree.map(lambda m: m.reshape(-1, *m.shape[2:]), metrics)
