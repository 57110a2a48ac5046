"""Evaluation on its own batch of environments with its own random stream: greedy by default.

`play_episodes` is the pure function (used inside training when `eval_every > 0`, and by `load_policy`); `evaluate`
is the user-facing call on a finished run's state. Each of `num_episodes` environments plays exactly one episode (its
auto-reset is ignored); the loop stops when all have finished or after the environment's `max_steps_in_episode`. The
policy acts exactly as in training (`policies.act`, its memory starting fresh), with observations normalised by the
run's statistics and the config it is given, so every cell of a sweep is evaluated with its own settings.

A host pool (`purejaxppo.envs.pools`) is evaluated on its own evaluation pool (`HostPool.for_evaluation`: the same
environments, the reproducible callback route, seeded from the evaluation key), never on the pool training steps.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from purejaxppo.config import PPOConfig
from purejaxppo.envs.make import make_env
from purejaxppo.envs.pools import HostPool, host_errors
from purejaxppo.envs.spec import Env
from purejaxppo.core.normalize import RunningStats, normalize_obs
from purejaxppo.models.policies import Policy, act, make_policy


def policy_action(pi, key: jax.Array, greedy: bool) -> jax.Array:
    """The distribution's mode (greedy; the Gaussian's mean) or a sample."""
    return pi.mode() if greedy else pi.sample(seed=key)


def play_episodes(env: Env, policy: Policy, params, obs_stats: RunningStats, key: jax.Array, hp,
                  num_episodes: int, greedy: bool = True) -> jax.Array:
    """Returns ``[num_episodes]`` of one episode in each of `num_episodes` environments (pure; jit and vmap freely).

    `hp` is the run's config: ``hp.normalize_observations`` and ``hp.obs_clip`` (may be traced) are read.
    """
    if isinstance(env, HostPool):
        env = env.for_evaluation()
    key_reset, key_run = jax.random.split(key)
    obs, env_state = env.reset(jax.random.split(key_reset, num_episodes))
    zeros = jnp.zeros((num_episodes,), jnp.float32)

    def cond(loop):
        t, _, _, _, finished, _ = loop
        return jnp.logical_and(t < env.spec.max_steps_in_episode, ~jnp.all(finished))

    def body(loop):
        t, env_state, obs, carry, finished, returns = loop
        key_action, key_env = jax.random.split(jax.random.fold_in(key_run, t))
        policy_obs = normalize_obs(obs_stats, obs, hp.obs_clip, hp.normalize_observations)
        reset = jnp.broadcast_to(t == 0, (num_episodes,))
        carry, pi = act(policy, params, carry, policy_obs, reset, env.action_mask(env_state))
        out = env.step(jax.random.split(key_env, num_episodes), env_state, policy_action(pi, key_action, greedy))
        returns = returns + jnp.where(finished, 0.0, out.reward)
        finished = finished | out.terminated | out.truncated
        return t + 1, out.env_state, out.obs, carry, finished, returns

    loop = (jnp.zeros((), jnp.int32), env_state, obs, policy.initial_carry(num_episodes), zeros.astype(bool), zeros)
    return jax.lax.while_loop(cond, body, loop)[-1]


def evaluate(
    config: PPOConfig,
    state,
    key: jax.Array,
    num_episodes: int = 32,
    env=None,
    env_params=None,
    deterministic: bool = True,
) -> jax.Array:
    """Returns of `num_episodes` episodes played by the policy in `state` (a `RunState`). Shape [num_episodes].

    Args:
      config: the run's `PPOConfig`.
      state: the run's `RunState` (its params and observation statistics are used).
      key: the evaluation key (independent of training).
      num_episodes: episodes to play, one per environment, in parallel.
      env, env_params: a custom environment (as given to `make_train`), or None for `config.env_name`.
      deterministic: greedy actions (the mode) if True, sampled actions otherwise.
    """
    if not isinstance(num_episodes, int) or isinstance(num_episodes, bool) or num_episodes < 1:
        raise ValueError(f"evaluate: num_episodes must be an integer >= 1, got {num_episodes!r}")
    env = make_env(config.env_name, config.env_kwargs_dict, env, env_params)
    policy = make_policy(config, env.spec)
    play = jax.jit(lambda params, stats, k, hp: play_episodes(env, policy, params, stats, k, hp, num_episodes,
                                                               deterministic))
    if isinstance(env, HostPool):
        with host_errors(env):
            return jax.block_until_ready(play(state.params, state.obs_stats, key, config))
    return play(state.params, state.obs_stats, key, config)
