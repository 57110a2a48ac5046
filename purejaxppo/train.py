"""`make_train(config)`: the whole PPO run as one jitted program.

    train(key) = scan(update, init(key), length=num_updates)
    update     = rollout -> values + GAE -> epochs(minibatches(loss -> grads -> clip -> Adam)) -> metrics [-> eval]

Everything is a pure function of the key and the config's float leaves, so `jax.vmap(train)` trains many seeds and
`purejaxppo.sweep` many hyperparameter settings in one compiled program. `make_train_functions` exposes the pieces
(`init`, `run`) so the command line can train in chunks of updates and checkpoint between them: ``run(state, n)`` from
a restored state gives bit-identical results to an uninterrupted run, because every random key is derived from the
base key and the update counter (no key is carried forward and split).

Random streams, all ``jax.random.fold_in(key, STREAM)`` of the run's key:
network initialisation 0, action sampling 1, environment transitions 2, initial reset 10_000, evaluation 999,
minibatch shuffling 0xA11CE. Per update u, a stream's key is ``fold_in(stream_key, u)``; evaluation therefore
consumes nothing that training uses, and turning it on cannot change training.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from flax import struct

from purejaxppo import rollout as rollout_lib
from purejaxppo.config import PPOConfig
from purejaxppo.envs import EnvSpec, make_env
from purejaxppo.evaluate import make_evaluate
from purejaxppo.gae import gae_advantages
from purejaxppo.losses import actor_critic_loss
from purejaxppo.networks import make_network
from purejaxppo.normalize import RewardNormState, RunningStats, normalize_rewards, update_stats
from purejaxppo.update import Batch, learning_rate_at, make_optimizer, run_epochs

STREAM_INIT = 0
STREAM_ACTIONS = 1
STREAM_ENV = 2
STREAM_EVAL = 999
STREAM_RESET = 10_000
STREAM_SHUFFLE = 0xA11CE

METRIC_NAMES = (
    "episode_return", "episode_length", "episodes_finished",
    "policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction",
    "explained_variance", "grad_norm", "learning_rate", "env_steps",
)  # plus "eval_return" when eval_every > 0


def stream(key: jax.Array, stream_id: int, index=None) -> jax.Array:
    """The key of a named random stream, optionally for one update `index`."""
    key = jax.random.fold_in(key, stream_id)
    return key if index is None else jax.random.fold_in(key, index)


class TrainState(struct.PyTreeNode):
    """Everything a run needs to continue: checkpoint this and training resumes exactly.

    params: network parameters. opt_state: optax state (Adam moments and step count).
    env_state: [N] environment states. obs: [N, *obs_shape] current raw observations.
    obs_stats: observation `RunningStats`. reward_state: `RewardNormState`.
    policy_carry: the GRU's hidden state [N, H] and last done flags (None for feed-forward networks).
    key: the run's base key. update: [] int32, updates done so far.
    """

    params: Any
    opt_state: Any
    env_state: Any
    obs: jax.Array
    obs_stats: RunningStats
    reward_state: RewardNormState
    policy_carry: Any
    key: jax.Array
    update: jax.Array


class TrainOutput(NamedTuple):
    """The final `TrainState` and the metrics, each ``[num_updates]`` (``[..., num_updates]`` under vmap)."""

    state: TrainState
    metrics: dict[str, jax.Array]


class TrainFunctions(NamedTuple):
    """The pieces of a run, all pure (jit them as you need).

    init(key, config) -> TrainState
    update(state, config) -> (TrainState, metrics of one update)
    run(state, config, num_updates) -> (TrainState, metrics [num_updates]); `num_updates` must be static.
    """

    init: Callable
    update: Callable
    run: Callable
    env: Any
    env_params: Any
    spec: EnvSpec
    network: Any


def _psum(x, axis_name):
    """`x` summed over the devices of `axis_name` (unchanged when it is None)."""
    return x if axis_name is None else jax.lax.psum(x, axis_name)


def _global_var(x: jax.Array, axis_name) -> jax.Array:
    """Variance of all elements (of every device's equal-sized `x`, with `axis_name`)."""
    if axis_name is None:
        return jnp.var(x)
    mean = jax.lax.pmean(x.mean(), axis_name)
    return jax.lax.pmean(jnp.square(x - mean).mean(), axis_name)


def masked_mean(values: jax.Array, where: jax.Array, axis_name=None) -> jax.Array:
    """Mean of `values` over `where`; NaN (never a fake 0) when nothing is selected."""
    count = _psum(where.sum(), axis_name)
    total = _psum(jnp.sum(jnp.where(where, values, 0.0)), axis_name)
    return jnp.where(count > 0, total / jnp.maximum(count, 1), jnp.nan)


def explained_variance(values: jax.Array, targets: jax.Array, axis_name=None) -> jax.Array:
    """1 - Var[G - V] / Var[G] (1 is perfect, 0 no better than a constant); NaN if the targets are constant."""
    var_targets = _global_var(targets, axis_name)
    residual_var = _global_var(targets - values, axis_name)
    return jnp.where(var_targets > 0, 1.0 - residual_var / jnp.where(var_targets > 0, var_targets, 1.0), jnp.nan)


def episode_metrics(transition: rollout_lib.Transition, axis_name=None) -> dict[str, jax.Array]:
    """Means over the episodes that finished during the rollout (NaN when none did) and their count.

    With `axis_name`, over the episodes of every device's environments.
    """
    done = transition.terminated | transition.truncated
    return {
        "episode_return": masked_mean(transition.episode_return, done, axis_name),
        "episode_length": masked_mean(transition.episode_length.astype(jnp.float32), done, axis_name),
        "episodes_finished": _psum(done.sum().astype(jnp.int32), axis_name),
    }


def normalize_rollout(config, transition, obs_stats, reward_state, axis_name=None):
    """The rollout's rewards [T, N] (scaled when normalize_rewards) and the statistics updated from this rollout.

    Observations are normalised by the caller with the statistics as they were *before* this update.
    Returns ``(rewards, obs_stats, reward_state)``.
    """
    rewards = transition.reward
    if config.normalize_rewards:
        dones = transition.terminated | transition.truncated
        reward_state, rewards = normalize_rewards(
            reward_state, rewards, dones, config.gamma, config.reward_clip, axis_name
        )
    if config.normalize_observations:
        obs_stats = update_stats(obs_stats, transition.obs.reshape((-1, *transition.obs.shape[2:])), axis_name)
    return rewards, obs_stats, reward_state


def initial_obs_stats(config, spec: EnvSpec, obs: jax.Array, axis_name=None) -> RunningStats:
    """Observation statistics for a new run: started from the first observations when normalising."""
    stats = RunningStats.create(spec.obs_shape)
    return update_stats(stats, obs, axis_name) if config.normalize_observations else stats


def update_metrics(config, update, transition, info, values, targets, axis_name=None) -> dict[str, jax.Array]:
    """The metrics of update `update` (0-based): episode statistics, averaged loss terms and diagnostics."""
    return {
        **episode_metrics(transition, axis_name),
        **info.loss._asdict(),
        "explained_variance": explained_variance(values, targets, axis_name),
        "grad_norm": info.grad_norm,
        "learning_rate": learning_rate_at(config, update),
        "env_steps": (update + 1) * config.batch_size * _psum(1, axis_name),
    }


def strong_types(tree):
    """`tree` with weakly typed leaves (e.g. gymnax's ``time=0``) made strongly typed, dtype unchanged.

    `init` returns strongly typed states. The states `update` returns often are (Freeway-MinAtar's step turns its weak
    reset values strong), and so are states restored from a checkpoint; all three then share one abstract signature,
    so a jitted `update` or chunk compiles once, not again on its second call.
    """

    def strong(x):
        return x if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key) else jax.lax.convert_element_type(x, x.dtype)

    return jax.tree.map(strong, tree)


def static_check(config: PPOConfig) -> Callable[[PPOConfig], None]:
    """A check that a config passed to a train function keeps `config`'s static fields (its floats may differ)."""
    static = jax.tree_util.tree_structure(config)

    def check(cfg: PPOConfig) -> None:
        if jax.tree_util.tree_structure(cfg) != static:
            raise ValueError("the config passed to a train function must have the same static fields "
                             "(sizes, network, env) as the one given to make_train")

    return check


def periodic_evaluation(evaluate_fn: Callable) -> Callable:
    """``eval_return(state, cfg)``: the mean return of `evaluate_fn` when ``state.update % eval_every == 0``, else
    NaN. Its key is ``fold_in(fold_in(key, 999), update)``, a stream training never uses."""

    def eval_return(state: TrainState, cfg: PPOConfig) -> jax.Array:
        key = stream(state.key, STREAM_EVAL, state.update)
        return jax.lax.cond(
            state.update % cfg.eval_every == 0,
            lambda: evaluate_fn(state.params, state.obs_stats, key).mean(),
            lambda: jnp.asarray(jnp.nan, jnp.float32),
        )

    return eval_return


def scan_updates(update: Callable, config: PPOConfig) -> Callable:
    """``run(state, cfg=config, num_updates=None)``: `update` scanned num_updates times (default cfg.num_updates)."""

    def run(state: TrainState, cfg: PPOConfig = config, num_updates: int | None = None):
        n = cfg.num_updates if num_updates is None else num_updates
        return jax.lax.scan(lambda s, _: update(s, cfg), state, None, length=n)

    return run


def prepare_batch(network, params, config, transition, obs_stats, reward_state, axis_name=None):
    """Normalise, value the batch in one critic pass, and compute GAE.

    Returns ``(Batch [T, N], obs_stats, reward_state)`` with the statistics updated from this rollout (from every
    device's rollout, with `axis_name`).
    """
    obs = rollout_lib.observe(config, obs_stats, transition.obs)
    final_obs = rollout_lib.observe(config, obs_stats, transition.final_obs)
    values = network.apply(params, obs, method="value")
    next_values = network.apply(params, final_obs, method="value")
    rewards, obs_stats, reward_state = normalize_rollout(config, transition, obs_stats, reward_state, axis_name)
    advantages, targets = gae_advantages(
        rewards, values, next_values, transition.terminated, transition.truncated, config.gamma, config.gae_lambda
    )
    batch = Batch(obs, transition.action, transition.log_prob, values, advantages, targets, transition.action_mask)
    return batch, obs_stats, reward_state


def make_train_functions(config: PPOConfig, env=None, env_params=None, axis_name: str | None = None) -> TrainFunctions:
    """Build the environment and network for `config` and return the pure pieces of a run.

    Every function takes the config again as an argument: its float leaves may be traced (a sweep), while its static
    fields must equal those of the config given here.

    `axis_name` (default None: one device) is for data parallelism (`purejaxppo.parallel`): the functions then run
    inside `shard_map` over that axis, `config.num_envs` is the number of environments *per device*, and environment
    keys, gradients (`lax.pmean`), advantage and normalisation statistics and the metrics are global.
    """
    if not isinstance(config, PPOConfig):
        raise TypeError(f"make_train needs a PPOConfig, got {type(config).__name__}")
    if config.network == "gru":
        if axis_name is not None:
            raise ValueError("axis_name (data parallelism) supports feed-forward networks only, not network='gru'")
        from purejaxppo.recurrent import make_recurrent_train_functions

        return make_recurrent_train_functions(config, env, env_params)
    env, env_params, spec = make_env(config, env, env_params)
    network = make_network(config, spec=spec)
    check = static_check(config)

    def init(key: jax.Array, cfg: PPOConfig = config) -> TrainState:
        check(cfg)
        obs, env_state = rollout_lib.reset_envs(env, env_params, stream(key, STREAM_RESET), cfg.num_envs, axis_name)
        params = network.init(stream(key, STREAM_INIT), obs[:1])
        opt_state = make_optimizer(cfg).init(params)
        return strong_types(TrainState(
            params=params, opt_state=opt_state, env_state=env_state, obs=obs,
            obs_stats=initial_obs_stats(cfg, spec, obs, axis_name),
            reward_state=RewardNormState.create(cfg.num_envs), policy_carry=None, key=key,
            update=jnp.zeros((), jnp.int32),
        ))

    def update(state: TrainState, cfg: PPOConfig = config) -> tuple[TrainState, dict[str, jax.Array]]:
        check(cfg)
        u = state.update
        policy_fn = lambda obs, mask: network.apply(state.params, obs, mask, method="policy")  # noqa: E731
        transition, env_state, obs = rollout_lib.collect(
            policy_fn, env, env_params, cfg, spec, state.obs_stats, state.env_state, state.obs,
            stream(state.key, STREAM_ACTIONS, u), stream(state.key, STREAM_ENV, u), axis_name,
        )
        batch, obs_stats, reward_state = prepare_batch(
            network, state.params, cfg, transition, state.obs_stats, state.reward_state, axis_name
        )
        flat = jax.tree.map(lambda x: x.reshape((-1, *x.shape[2:])), batch)
        loss_fn = lambda p, mb: actor_critic_loss(p, network, mb, cfg, axis_name)  # noqa: E731
        params, opt_state, info = run_epochs(
            state.params, state.opt_state, flat, stream(state.key, STREAM_SHUFFLE, u), loss_fn,
            make_optimizer(cfg), cfg, axis_name,
        )
        new_state = state.replace(
            params=params, opt_state=opt_state, env_state=env_state, obs=obs, obs_stats=obs_stats,
            reward_state=reward_state, update=u + 1,
        )
        metrics = update_metrics(cfg, u, transition, info, batch.value, batch.target, axis_name)
        if cfg.eval_every > 0:
            metrics["eval_return"] = eval_return(new_state, cfg)
        return new_state, metrics

    if config.eval_every > 0:
        eval_return = periodic_evaluation(make_evaluate(config, env, env_params, spec, network, config.eval_episodes))
    run = scan_updates(update, config)
    return TrainFunctions(init, update, run, env, env_params, spec, network)


def make_train(config: PPOConfig, env=None, env_params=None) -> Callable[..., TrainOutput]:
    """A jitted ``train(key, hparams=None) -> TrainOutput`` for `config`'s whole budget.

    Args:
      config: the run's `PPOConfig`.
      env, env_params: any environment with gymnax 1.0's API (None builds `config.env_name`).

    `train(key)` trains one seed; ``jax.jit(jax.vmap(train))(keys)`` trains many in one program. The optional second
    argument is a config with the same static fields whose float leaves replace `config`'s (what `sweep` vmaps over).
    Metrics are ``[num_updates]`` arrays named in `METRIC_NAMES` (plus "eval_return" when eval_every > 0).
    """
    fns = make_train_functions(config, env, env_params)

    def train(key: jax.Array, hparams: PPOConfig | None = None) -> TrainOutput:
        cfg = config if hparams is None else hparams
        state, metrics = fns.run(fns.init(key, cfg), cfg)
        return TrainOutput(state, metrics)

    return jax.jit(train)
