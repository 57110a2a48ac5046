"""The environment interface the pipeline steps: `EnvSpec` (static facts), `EnvStep` and `Env` (N environments).

Semantics every suite follows (gymnax 1.0's): ``reset(key, params) -> (obs, state)`` and ``step(key, state, action,
params) -> (obs, state, reward, terminated, truncated, info)`` with auto-reset inside `step`. On the step where
``terminated or truncated``, `reward` is the episode's last reward, `obs` already belongs to the next episode, and
``info["final_observation"]`` is the pre-reset observation (needed to bootstrap a truncation).

Host environment pools (`purejaxppo.envs.pools`: EnvPool, Gymnasium) may reset on the step *after* the one that ends
an episode (EnvPool's NEXT_STEP auto-reset). Their `EnvSpec.next_step_reset` is True and their `EnvStep` carries two
more flags: `valid` (False on that reset step, whose action the pool ignores and which the learner masks) and
`episode_start` (obs starts an episode: the policy's reset flag). For every other environment both are None and the
pipeline runs exactly as before (the flag is static). An asynchronous pool (`EnvSpec.pool_envs` > 0) runs P
environments and answers each step with the N that are ready first: `EnvStep.env_id` says which, and the rollout
(`training.rollout`) routes each action and result to its environment.

Action masks: an environment may define ``action_mask(state, params) -> bool[num_actions]``; the wrappers pass it
through (`action_mask` below), so the mask always describes the state the agent is about to act in.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import numpy as np


class EnvSpec(NamedTuple):
    """What the network and the rollout need to know about an environment (all static Python values)."""

    obs_shape: tuple[int, ...]
    discrete: bool
    num_actions: int  # discrete: number of actions; continuous: action dimension
    action_low: Any  # continuous only: np.ndarray [action_dim]
    action_high: Any
    has_action_mask: bool
    max_steps_in_episode: int
    obs_dtype: Any = np.float32  # the observations' dtype: float32, or uint8 for image frames of a host pool
    next_step_reset: bool = False  # the step after an episode's end is a reset step to mask (`EnvStep.valid`)
    pool_envs: int = 0  # an asynchronous pool's size P (each step answers num_envs of them, `EnvStep.env_id`); 0: none


def action_mask(env, state, params):
    """The environment's legal-action mask, bool[num_actions], through any wrappers; None if it defines none."""
    fn = getattr(env, "action_mask", None)
    if fn is None:
        return None
    return fn(state, params)


class EnvStep(NamedTuple):
    """The result of stepping N environments (`Env.step`)."""

    obs: jax.Array  # [N, *obs_shape], already the next episode's first observation where done
    env_state: Any
    reward: jax.Array  # [N]
    terminated: jax.Array  # [N]
    truncated: jax.Array  # [N]
    final_obs: jax.Array  # [N, *obs_shape], the pre-reset observation (== obs unless done)
    episode_return: jax.Array  # [N]
    episode_length: jax.Array  # [N]
    valid: Any = None  # [N] bool, False on a NEXT_STEP pool's reset step (None unless spec.next_step_reset)
    episode_start: Any = None  # [N] bool, obs starts an episode (None unless spec.next_step_reset)
    env_id: Any = None  # [N] int32, which of an asynchronous pool's P environments each row is (None unless pool_envs)


class Env(NamedTuple):
    """An environment ready for the pipeline: the wrapped environment, its params and its spec (all static).

    The methods run one environment per key (vmapped); environment i's randomness is its own key's.
    """

    wrapped: Any
    params: Any
    spec: EnvSpec

    def reset(self, keys: jax.Array) -> tuple[jax.Array, Any]:
        """Reset one environment per key: keys [N] -> ``(obs [N, *obs_shape], state [N])``."""
        return jax.vmap(self.wrapped.reset, in_axes=(0, None))(keys, self.params)

    def step(self, keys: jax.Array, state, action: jax.Array) -> EnvStep:
        """Step N environments (auto-resetting those that finish): keys [N], state [N], action [N] or [N, A]."""
        obs, state, reward, terminated, truncated, info = jax.vmap(self.wrapped.step, in_axes=(0, 0, 0, None))(
            keys, state, action, self.params
        )
        return EnvStep(
            obs, state, reward, terminated, truncated, info["final_observation"],
            info["episode_return"], info["episode_length"],
        )

    def action_mask(self, state) -> jax.Array | None:
        """``bool[N, A]`` legal actions in each environment's current state, or None when the environment has none."""
        if not self.spec.has_action_mask:
            return None
        return jax.vmap(action_mask, in_axes=(None, 0, None))(self.wrapped, state, self.params).astype(bool)
