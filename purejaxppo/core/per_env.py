"""Per-environment sequences of an asynchronous rollout, where each step's rows belong to different environments.

An asynchronous pool (EnvPool with ``batch_size < num_envs``) answers each step with the B environments that are
ready first, so row b of step t is environment ``env_id[t, b]`` and one environment's transitions are scattered over
the rollout ``[T, B]``. GAE and the discounted return of reward normalisation follow each environment's own sequence:

    env_major(env_id [T, B])  -> EnvOrder: the rows sorted by (environment, time), and where each sequence starts/ends
    per_env_gae(order, ...)   -> advantages, targets [T, B]: GAE along each environment's sequence
    per_env_returns(order, ...) -> running discounted returns [T, B], and each environment's return carried on [P]

A sequence's last row in the rollout bootstraps from its own ``V(s')`` (the value of the observation that came back
with its reward; that observation is acted on, and completed, in a later step or rollout) and stops the recursion
there, exactly as a time-major rollout's last step does. Each row is one environment's complete transition, so the
rows of one step never share an environment (EnvPool's recv returns B distinct environments).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from purejaxppo.core.gae import gae_advantages


class EnvOrder(NamedTuple):
    """The rows of a ``[T, B]`` rollout in (environment, time) order. R = T * B.

    order: [R] int32, flat time-major row index (``t * B + b``) of each sorted position.
    env:   [R] int32, the environment of each sorted position (ascending).
    start: [R] bool, the position starts its environment's sequence in this rollout.
    end:   [R] bool, the position ends it (the environment's latest transition).
    """

    order: jax.Array
    env: jax.Array
    start: jax.Array
    end: jax.Array


def env_major(env_id: jax.Array) -> EnvOrder:
    """Sort a rollout's rows by environment, keeping time order within each environment. env_id: [T, B] int."""
    flat = env_id.reshape(-1).astype(jnp.int32)
    order = jnp.argsort(flat, stable=True).astype(jnp.int32)
    env = flat[order]
    change = env[1:] != env[:-1]
    true = jnp.ones((1,), bool)
    return EnvOrder(order, env, jnp.concatenate([true, change]), jnp.concatenate([change, true]))


def _sorted(order: EnvOrder, x: jax.Array) -> jax.Array:
    """``x [T, B]`` as a single time-major sequence ``[R, 1]`` in (environment, time) order."""
    return x.reshape(-1)[order.order][:, None]


def _unsorted(order: EnvOrder, x: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """The inverse of `_sorted`: ``[R, 1]`` back to the rollout's ``[T, B]``."""
    return jnp.zeros_like(x[:, 0]).at[order.order].set(x[:, 0]).reshape(shape)


def per_env_gae(order: EnvOrder, rewards, values, next_values, terminated, truncated, gamma, gae_lambda):
    """`gae.gae_advantages` along each environment's sequence; every argument and result is ``[T, B]``.

    The sorted rows form one sequence in which a sequence's end cuts the recursion as a truncation would (bootstrap
    from its own ``V(s')``, nothing carried from the next environment's first row).
    """
    cut = _sorted(order, truncated) | order.end[:, None]
    advantages, targets = gae_advantages(
        _sorted(order, rewards), _sorted(order, values), _sorted(order, next_values), _sorted(order, terminated), cut,
        gamma, gae_lambda,
    )
    return _unsorted(order, advantages, values.shape), _unsorted(order, targets, values.shape)


def per_env_returns(order: EnvOrder, rewards, dones, carried, gamma) -> tuple[jax.Array, jax.Array]:
    """Each environment's running discounted return along its sequence (what `normalize.normalize_rewards` scans).

    Args:
      rewards, dones: [T, B]. carried: [P] each environment's return before this rollout. gamma: scalar.
    Returns:
      ``(returns [T, B], carried [P])``: the return including each row (before a done restarts it), and each
      environment's return after its last row (unchanged for an environment absent from the rollout).
    """

    def accumulate(ret, step):
        r_t, done_t, start_t, initial_t = step
        ret = jnp.where(start_t, initial_t, ret) * gamma + r_t
        restarted = jnp.where(done_t, 0.0, ret)
        return restarted, (ret, restarted)

    initial = carried[order.env]
    _, (returns, after) = jax.lax.scan(
        accumulate, jnp.zeros((), carried.dtype),
        (_sorted(order, rewards)[:, 0], _sorted(order, dones)[:, 0], order.start, initial),
    )
    last = jnp.where(order.end, order.env, carried.shape[0])  # only each sequence's end writes; the rest drop
    carried = carried.at[last].set(after, mode="drop")
    return _unsorted(order, returns[:, None], rewards.shape), carried
