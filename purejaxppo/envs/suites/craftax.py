"""Craftax environments behind gymnax 1.0's interface (the optional extra: ``pip install "purejaxppo[craftax]"``).

    config = PPOConfig(env_name="craftax:Craftax-Classic-Symbolic-v1", network="gru", ...)  # envs.make_base_env:
    env, env_params = make_craftax_env("Craftax-Classic-Symbolic-v1", max_timesteps=10_000)

`make_craftax_env` wraps craftax's environment *without* auto-reset (``craftax.craftax_env.make_craftax_env_from_name
(name, auto_reset=False)``; none of craftax's or its baselines' reset wrappers) as a `CraftaxGymnaxEnv`:

* ``reset(key, params) -> (obs, CraftaxEnvState)``
* ``step(key, state, action, params) -> (obs, state, reward, terminated, truncated, info)``, one environment
  (batch with `jax.vmap`, as for any gymnax environment).

Episode ends, kept apart as PPO needs them (``purejaxppo.core.gae`` bootstraps truncations and not terminations). Craftax
has one ``done`` (``is_game_over``): the time limit (``state.timestep >= params.max_timesteps``) or the end of the game
(the player died, or stood in lava in Classic, or beat the final boss in Craftax). Here

* ``terminated`` is the end of the game: craftax's own ``is_terminal`` with the time limit taken out;
* ``truncated`` is the time limit reached on a step that did not end the game (so a death on the time limit's step
  is a termination, as Brax's `EpisodeWrapper` decides).

Auto-reset: on a step that ends the episode, `obs` and the state already belong to a new world, and
``info["final_observation"]`` is the pre-reset observation, whose value bootstraps a truncated episode. The step's key
is split into ``(key_step, key_reset)`` exactly as craftax's auto-resetting environments split it, so the adapter's
episodes are bit-identical to theirs (the reset is computed every step and selected where the episode ended).

Observations: float32 in [0, 1]. The Symbolic variants are flat vectors (Classic 1345, Craftax 8268: a one-hot local
map and the inventory, for the MLP or GRU torso); the Pixels variants are images ``[H, W, 3]`` (for ``network="cnn"``).
Actions: `Discrete` (17 in Classic, 43 in Craftax). ``info`` also carries craftax's own per-step metrics (the
achievements unlocked in the episode and its ``score``, non-zero on the ending step only).

Params: `CraftaxEnvParams` holds craftax's own ``EnvParams`` (``params.game``); its ``max_steps_in_episode`` is
``game.max_timesteps`` (10,000 in Classic, 100,000 in Craftax), the bound purejaxppo's evaluation loop uses.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces

from purejaxppo.extras import import_extra

# The environments make_craftax_env_from_name builds without auto-reset (craftax 1.x).
CRAFTAX_NAMES = (
    "Craftax-Classic-Symbolic-v1",
    "Craftax-Classic-Pixels-v1",
    "Craftax-Symbolic-v1",
    "Craftax-Pixels-v1",
)
_NEVER = 2**31 - 1  # a time limit that is never reached: is_terminal without it is the game's end


@struct.dataclass
class CraftaxEnvParams:
    """game: craftax's ``EnvParams`` (``max_timesteps``, ``day_length``, mob settings, ...)."""

    game: Any

    @property
    def max_steps_in_episode(self):
        """The time limit: craftax's ``max_timesteps``; reaching it truncates the episode."""
        return self.game.max_timesteps


@struct.dataclass
class CraftaxEnvState:
    """game: craftax's ``EnvState`` of the current episode (its ``timestep`` counts the episode's steps)."""

    game: Any


class CraftaxGymnaxEnv(environment.Environment):
    """One Craftax environment with gymnax 1.0's `reset`/`step` (see the module docstring for the episode semantics)."""

    def __init__(self, craftax_env, name: str, game_params):
        self.craftax_env = craftax_env
        self._name = name
        self._game_params = game_params
        space = craftax_env.observation_space(game_params)
        self._obs_shape = tuple(int(n) for n in space.shape)
        self._num_actions = int(craftax_env.action_space(game_params).n)

    @property
    def name(self) -> str:
        return f"craftax:{self._name}"

    @property
    def default_params(self) -> CraftaxEnvParams:
        return CraftaxEnvParams(game=self._game_params)

    @partial(jax.jit, static_argnames=("self",))
    def reset(self, key: jax.Array, params: CraftaxEnvParams | None = None) -> tuple[jax.Array, CraftaxEnvState]:
        """A new world: ``(obs float32, state)``."""
        params = self.default_params if params is None else params
        obs, game_state = self.craftax_env.reset_env(key, params.game)
        return _obs(obs), CraftaxEnvState(game_state)

    @partial(jax.jit, static_argnames=("self",))
    def step(self, key: jax.Array, state: CraftaxEnvState, action: jax.Array, params: CraftaxEnvParams | None = None):
        """One step with auto-reset; returns ``(obs, state, reward, terminated, truncated, info)``.

        action: [] int. reward: [] float32. terminated, truncated: [] bool (never both).
        info: craftax's metrics of the step and "final_observation" (the pre-reset observation).
        """
        params = self.default_params if params is None else params
        key_step, key_reset = jax.random.split(key)  # as craftax's EnvironmentAutoReset.step splits it
        obs_step, next_game, reward, done, info = self.craftax_env.step_env(key_step, state.game, action, params.game)
        terminated = jnp.asarray(self.craftax_env.is_terminal(next_game, params.game.replace(max_timesteps=_NEVER)))
        done = jnp.asarray(done, bool)
        truncated = done & ~terminated
        reset_obs, reset_game = self.craftax_env.reset_env(key_reset, params.game)
        final_obs = _obs(obs_step)
        select = lambda a, b: jnp.where(done, a, jnp.asarray(b).astype(jnp.asarray(a).dtype))  # noqa: E731
        new_state = CraftaxEnvState(jax.tree.map(select, reset_game, next_game))
        info = {**info, "final_observation": final_obs}
        return select(_obs(reset_obs), final_obs), new_state, jnp.asarray(reward, jnp.float32), terminated, \
            truncated, info

    def action_space(self, params: CraftaxEnvParams | None = None) -> spaces.Discrete:
        return spaces.Discrete(self._num_actions)

    def observation_space(self, params: CraftaxEnvParams | None = None) -> spaces.Box:
        return spaces.Box(0.0, 1.0, self._obs_shape, jnp.float32)

    @property
    def num_actions(self) -> int:
        return self._num_actions


def _obs(obs) -> jax.Array:
    return jnp.asarray(obs, jnp.float32)


def make_craftax_env(name: str, **kwargs) -> tuple[CraftaxGymnaxEnv, CraftaxEnvParams]:
    """A Craftax environment adapted to gymnax 1.0's interface, and its default params.

    Args:
      name: one of `CRAFTAX_NAMES`, e.g. "Craftax-Classic-Symbolic-v1".
      **kwargs: fields of craftax's ``EnvParams`` for the default params, e.g. ``max_timesteps`` (the time limit),
        ``day_length``.

    Raises:
      ValueError: craftax is not installed, `name` is not a Craftax environment (the names are listed), or a key of
        `kwargs` is not a field of craftax's ``EnvParams`` (the fields are listed).
    """
    craftax_check(name)
    from craftax.craftax_env import make_craftax_env_from_name  # the optional extra

    craftax_env = make_craftax_env_from_name(name, auto_reset=False)
    game_params = craftax_env.default_params
    fields = list(getattr(game_params, "__dataclass_fields__", {}))
    unknown = sorted(set(kwargs) - set(fields))
    if unknown:
        raise ValueError(f"craftax:{name} has no env param(s) {unknown}; craftax's EnvParams has {fields}")
    game_params = game_params.replace(**kwargs)
    max_timesteps = game_params.max_timesteps
    if not isinstance(max_timesteps, int) or isinstance(max_timesteps, bool) or max_timesteps < 1:
        raise ValueError(f"max_timesteps must be an integer >= 1, got {max_timesteps!r}")
    env = CraftaxGymnaxEnv(craftax_env, name, game_params)
    return env, env.default_params


def craftax_check(name: str) -> None:
    """Raise a ValueError if craftax is not installed or `name` is not one of its environments (listed)."""
    import_extra("craftax.craftax_env", f"craftax:{name}", "craftax")
    if name not in CRAFTAX_NAMES:
        raise ValueError(f"'{name}' is not a Craftax environment; registered: {', '.join(CRAFTAX_NAMES)}")
