"""Evaluation on its own batch of environments with its own random stream: greedy by default.

`make_evaluate` builds the pure function used inside training (`eval_every`), for feed-forward and recurrent
networks alike; `evaluate` is the user-facing call on a finished `TrainState`. Each of `num_episodes` environments plays exactly one episode (its auto-reset is ignored); the
loop stops when all have finished or after the environment's `max_steps_in_episode`.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from purejaxppo.rollout import batch_action_mask, observe, reset_envs, step_envs


def policy_action(pi, key: jax.Array, deterministic: bool) -> jax.Array:
    """The distribution's mode (greedy; the Gaussian's mean) or a sample."""
    return pi.mode() if deterministic else pi.sample(seed=key)


def make_evaluate(config, env, env_params, spec, network, num_episodes: int, deterministic: bool = True) -> Callable:
    """``evaluate_fn(params, obs_stats, key) -> returns [num_episodes]`` (pure; jit and vmap freely).

    Feed-forward networks act on the observation alone; the GRU (`config.network == "gru"`) carries its hidden state
    from a fresh start, with the reset flag set on the first step only.
    """
    max_steps = spec.max_steps_in_episode
    if config.network == "gru":
        initial_policy_state = lambda: network.initial_carry(num_episodes)  # noqa: E731

        def act(params, hidden, obs, mask, first):
            return network.apply(params, hidden, obs, jnp.broadcast_to(first, (num_episodes,)), mask, method="step")
    else:
        initial_policy_state = lambda: None  # noqa: E731

        def act(params, policy_state, obs, mask, first):
            return policy_state, network.apply(params, obs, mask, method="policy")

    def evaluate_fn(params, obs_stats, key):
        key_reset, key_run = jax.random.split(key)
        obs, env_state = reset_envs(env, env_params, key_reset, num_episodes)
        zeros = jnp.zeros((num_episodes,), jnp.float32)

        def cond(carry):
            t, _, _, _, finished, _ = carry
            return jnp.logical_and(t < max_steps, ~jnp.all(finished))

        def body(carry):
            t, env_state, obs, policy_state, finished, returns = carry
            key_action, key_env = jax.random.split(jax.random.fold_in(key_run, t))
            mask = batch_action_mask(env, env_params, env_state, spec.has_action_mask)
            policy_state, pi = act(params, policy_state, observe(config, obs_stats, obs), mask, t == 0)
            out = step_envs(env, env_params, env_state, policy_action(pi, key_action, deterministic), key_env)
            returns = returns + jnp.where(finished, 0.0, out.reward)
            finished = finished | out.terminated | out.truncated
            return t + 1, out.env_state, out.obs, policy_state, finished, returns

        carry = (jnp.zeros((), jnp.int32), env_state, obs, initial_policy_state(), zeros.astype(bool), zeros)
        return jax.lax.while_loop(cond, body, carry)[-1]

    return evaluate_fn


def evaluate(
    config,
    state,
    key: jax.Array,
    num_episodes: int = 32,
    env=None,
    env_params=None,
    deterministic: bool = True,
) -> jax.Array:
    """Returns of `num_episodes` episodes played by the policy in `state` (a `TrainState`). Shape [num_episodes].

    Args:
      config: the run's `PPOConfig`.
      state: the `TrainState` (its params and observation statistics are used).
      key: the evaluation key (independent of training).
      num_episodes: episodes to play, one per environment, in parallel.
      env, env_params: a custom environment (as given to `make_train`), or None for `config.env_name`.
      deterministic: greedy actions (the mode) if True, sampled actions otherwise.
    """
    from purejaxppo.envs import make_env
    from purejaxppo.networks import make_network

    if not isinstance(num_episodes, int) or num_episodes < 1:
        raise ValueError(f"evaluate: num_episodes must be an integer >= 1, got {num_episodes!r}")
    env, env_params, spec = make_env(config, env, env_params)
    network = make_network(config, spec=spec)
    evaluate_fn = make_evaluate(config, env, env_params, spec, network, num_episodes, deterministic)
    return jax.jit(evaluate_fn)(state.params, state.obs_stats, key)
