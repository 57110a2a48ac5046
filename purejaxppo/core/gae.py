"""Generalized Advantage Estimation that tells termination from truncation (Schulman et al., 2016, arXiv 1506.02438).

For step t with successor s'_t (the pre-reset next state of the *same* episode):

    delta_t = r_t + gamma * (1 - terminated_t) * V(s'_t) - V(s_t)
    A_t     = delta_t + gamma * lambda * (1 - done_t) * A_{t+1},      done_t = terminated_t or truncated_t,  A_T = 0
    G_t     = A_t + V(s_t)                                             (the value target)

* termination zeroes the bootstrap: nothing follows a terminal state;
* truncation keeps it: the episode was cut by a time limit, so V(s'_t) = V(final observation) stands in for the rest;
* `done` stops the recursion, so no advantage leaks across an auto-reset into the next episode.

At the end of the rollout (t = T - 1, not done), s'_t is the current observation, so the last step bootstraps too.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def gae_advantages(
    rewards: jax.Array,
    values: jax.Array,
    next_values: jax.Array,
    terminated: jax.Array,
    truncated: jax.Array,
    gamma,
    gae_lambda,
) -> tuple[jax.Array, jax.Array]:
    """Advantages and value targets, time-major.

    Args:
      rewards:     [T, ...] r_t.
      values:      [T, ...] V(s_t).
      next_values: [T, ...] V(s'_t), the value of the pre-reset successor observation.
      terminated:  [T, ...] bool.
      truncated:   [T, ...] bool.
      gamma, gae_lambda: scalars (may be traced).

    Returns:
      ``(advantages [T, ...], targets [T, ...])`` in the dtype of `values`.
    """
    if not (rewards.shape == values.shape == next_values.shape == terminated.shape == truncated.shape):
        raise ValueError(
            "gae_advantages needs equal shapes, got rewards "
            f"{rewards.shape}, values {values.shape}, next_values {next_values.shape}, "
            f"terminated {terminated.shape}, truncated {truncated.shape}"
        )
    not_terminated = 1.0 - terminated.astype(values.dtype)
    not_done = 1.0 - jnp.logical_or(terminated, truncated).astype(values.dtype)
    deltas = rewards + gamma * not_terminated * next_values - values
    decay = gamma * gae_lambda * not_done

    def backward(advantage_next, step):
        delta_t, decay_t = step
        advantage = delta_t + decay_t * advantage_next
        return advantage, advantage

    _, advantages = jax.lax.scan(backward, jnp.zeros_like(values[0]), (deltas, decay), reverse=True)
    return advantages, advantages + values
