"""The wrapper stack every JAX environment runs through (`purejaxppo.envs.make.make_env` builds it):

    EpisodeStatistics( ClipAction( ObservationToArray( base ) ) )        (ClipAction only for Box action spaces)

All wrappers keep gymnax 1.0's interface (see `purejaxppo.envs.spec`). Observations keep their natural shape (a
policy's torso flattens what it needs), so nothing here depends on the policy. Observation and reward
*normalisation* are not wrappers: their statistics live in the training state (`purejaxppo.core.normalize`), so
evaluation and checkpoints keep them.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import spaces

from purejaxppo.envs.spec import action_mask


class Wrapper:
    """Base wrapper: forwards attributes to the wrapped environment (as gymnax's GymnaxWrapper does)."""

    def __init__(self, env):
        self._env = env

    def __getattr__(self, name):
        return getattr(self._env, name)

    @property
    def unwrapped(self):
        return getattr(self._env, "unwrapped", self._env)

    def action_mask(self, state, params):
        return action_mask(self._env, state, params)


class ObservationToArray(Wrapper):
    """Observations as float32 arrays of their natural shape: Discrete observations become one-hot, others are cast."""

    def __init__(self, env, params):
        super().__init__(env)
        space = env.observation_space(params)
        self._one_hot = int(space.n) if isinstance(space, spaces.Discrete) else 0

    def _convert(self, obs):
        if self._one_hot:
            return jax.nn.one_hot(obs, self._one_hot, dtype=jnp.float32)  # float32 under x64 too
        return jnp.asarray(obs, jnp.float32)

    @partial(jax.jit, static_argnums=0)
    def reset(self, key, params=None):
        obs, state = self._env.reset(key, params)
        return self._convert(obs), state

    @partial(jax.jit, static_argnums=0)
    def step(self, key, state, action, params=None):
        obs, state, reward, terminated, truncated, info = self._env.step(key, state, action, params)
        info = {**info, "final_observation": self._convert(info["final_observation"])}
        return self._convert(obs), state, reward, terminated, truncated, info


class ClipAction(Wrapper):
    """Clip continuous actions into the Box bounds before the environment sees them.

    The agent keeps the unclipped sample for its log-probability; only the environment gets the clipped action.
    """

    def __init__(self, env, low, high):
        super().__init__(env)
        self._low = np.asarray(low, np.float32)
        self._high = np.asarray(high, np.float32)

    @partial(jax.jit, static_argnums=0)
    def step(self, key, state, action, params=None):
        return self._env.step(key, state, jnp.clip(action, self._low, self._high), params)


@struct.dataclass
class EpisodeStatisticsState:
    env_state: Any
    episode_return: jax.Array  # [] running return of the current episode
    episode_length: jax.Array  # [] running length of the current episode


class EpisodeStatistics(Wrapper):
    """Track each episode's return and length across auto-reset.

    On every step, ``info["episode_return"]`` and ``info["episode_length"]`` hold the running totals *including* this
    step's reward. On the step where ``terminated or truncated`` they are the finished episode's final totals (so the
    terminal reward is counted), and the running totals restart at 0 for the episode that `obs` already belongs to.
    """

    @partial(jax.jit, static_argnums=0)
    def reset(self, key, params=None):
        obs, env_state = self._env.reset(key, params)
        return obs, EpisodeStatisticsState(env_state, jnp.zeros((), jnp.float32), jnp.zeros((), jnp.int32))

    @partial(jax.jit, static_argnums=0)
    def step(self, key, state, action, params=None):
        obs, env_state, reward, terminated, truncated, info = self._env.step(key, state.env_state, action, params)
        reward = jnp.asarray(reward, jnp.float32)
        terminated = jnp.asarray(terminated, bool)
        truncated = jnp.asarray(truncated, bool)
        episode_return = state.episode_return + reward
        episode_length = state.episode_length + 1
        done = terminated | truncated
        info = {**info, "episode_return": episode_return, "episode_length": episode_length}
        state = EpisodeStatisticsState(
            env_state,
            jnp.where(done, 0.0, episode_return),
            jnp.where(done, 0, episode_length),
        )
        return obs, state, reward, terminated, truncated, info

    def action_mask(self, state, params):
        return action_mask(self._env, state.env_state, params)




def has_action_mask(env) -> bool:
    while isinstance(env, Wrapper):
        env = env._env
    return callable(getattr(env, "action_mask", None))
