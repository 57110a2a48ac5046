"""Probe environments (gymnax 1.0 API) whose right answers are known in closed form.

After Andy Jones' "Debugging RL, without the agonizing pain": each isolates one part of the agent.
"""

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces


@struct.dataclass
class ProbeState(environment.EnvState):
    time: int
    legal: jax.Array  # used by the masked probe only


@struct.dataclass
class ProbeParams(environment.EnvParams):
    max_steps_in_episode: int = 1000


class _Probe(environment.Environment):
    obs_dim = 1
    n_actions = 2

    @property
    def default_params(self):
        return ProbeParams()

    def reset_env(self, key, params):
        state = ProbeState(time=0, legal=jnp.ones(self.n_actions, bool))
        return self.get_obs(state), state

    def get_obs(self, state, params=None, key=None):
        return jnp.ones((self.obs_dim,), jnp.float32)

    def action_space(self, params=None):
        return spaces.Discrete(self.n_actions)

    def observation_space(self, params):
        return spaces.Box(0.0, 1.0, (self.obs_dim,), jnp.float32)


class ConstantRewardHorizon(_Probe):
    """Reward 1 per step; terminates after `horizon` steps; obs = one-hot(time). V(s_0) = (1 - g^H) / (1 - g)."""

    def __init__(self, horizon: int = 5):
        self.horizon = horizon
        self.obs_dim = horizon

    def get_obs(self, state, params=None, key=None):
        return jax.nn.one_hot(state.time, self.horizon)

    def step_env(self, key, state, action, params):
        state = state.replace(time=state.time + 1)
        terminated = state.time >= self.horizon
        return self.get_obs(state), state, jnp.float32(1.0), terminated, {}


class BestAction(_Probe):
    """One-step episodes; reward depends on the action only: [0, 1, 0.5]. The best action is 1."""

    n_actions = 3

    def step_env(self, key, state, action, params):
        reward = jnp.array([0.0, 1.0, 0.5])[action]
        return self.get_obs(state), state.replace(time=state.time + 1), reward, jnp.bool_(True), {}


class ConstantRewardTimeLimit(_Probe):
    """Reward 1 forever, constant observation, cut by a time limit: V = 1 / (1 - gamma), not the truncated sum."""

    def __init__(self, time_limit: int = 20):
        self.time_limit = time_limit

    @property
    def default_params(self):
        return ProbeParams(max_steps_in_episode=self.time_limit)

    def step_env(self, key, state, action, params):
        return self.get_obs(state), state.replace(time=state.time + 1), jnp.float32(1.0), jnp.bool_(False), {}


class MaskedChoice(_Probe):
    """Each state has a random set of legal actions (a new one every step and at every reset).

    Reward 0 for a legal action, -1 for an illegal one; episodes end at random (probability 0.5 per step), so
    auto-resets are frequent. Every return is 0 exactly when no illegal action was ever taken.
    """

    n_actions = 4
    obs_dim = 4

    def _new_legal(self, key):
        legal = jax.random.bernoulli(key, 0.5, (self.n_actions,))
        return legal.at[jax.random.randint(key, (), 0, self.n_actions)].set(True)  # at least one

    def reset_env(self, key, params):
        state = ProbeState(time=0, legal=self._new_legal(key))
        return self.get_obs(state), state

    def get_obs(self, state, params=None, key=None):
        return state.legal.astype(jnp.float32)

    def step_env(self, key, state, action, params):
        key_legal, key_end = jax.random.split(key)
        reward = jnp.where(state.legal[action], 0.0, -1.0)
        state = state.replace(time=state.time + 1, legal=self._new_legal(key_legal))
        terminated = jax.random.bernoulli(key_end, 0.5)
        return self.get_obs(state), state, reward, terminated, {}

    def action_mask(self, state, params):
        return state.legal
