"""Craftax environments behind gymnax 1.0's interface (the optional extra: ``pip install "purejaxppo[craftax]"``).

    config = PPOConfig(env_name="craftax:Craftax-Classic-Symbolic-v1", network="gru", ...)  # envs.make_base_env:
    env, env_params = make_craftax_env("Craftax-Classic-Symbolic-v1", max_timesteps=10_000)

`make_craftax_env` wraps craftax's environment *without* auto-reset (``craftax.craftax_env.make_craftax_env_from_name
(name, auto_reset=False)``; none of craftax's or its baselines' reset wrappers) as a `CraftaxEnv` (on
`purejaxppo.envs.suites.base.SuiteEnv`):

* ``reset(key, params) -> (obs, SuiteState)``, ``state.suite_state`` craftax's ``EnvState``
* ``step(key, state, action, params) -> (obs, state, reward, terminated, truncated, info)``, one environment
  (batch with `jax.vmap`, as for any gymnax environment).

Episode ends, kept apart as PPO needs them (``purejaxppo.core.gae`` bootstraps truncations and not terminations).
Craftax has one ``done`` (``is_game_over``): the time limit (``state.timestep >= params.max_timesteps``) or the end of
the game (the player died, or stood in lava in Classic, or beat the final boss in Craftax). Here

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

from typing import Any

import jax
from flax import struct

from purejaxppo.envs.suites.base import Reset, SuiteEnv, Transition, built, check_time_limit, import_suite

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


class CraftaxEnv(SuiteEnv):
    """One Craftax environment with gymnax 1.0's `reset`/`step` (see the module docstring for the episode semantics)."""

    prefix = "craftax"

    def __init__(self, craftax_env, name: str, game_params):
        self.craftax_env = craftax_env
        super().__init__(name, craftax_env.observation_space(game_params).shape, craftax_env.action_space(game_params),
                         CraftaxEnvParams(game=game_params), obs_low=0.0, obs_high=1.0)

    def split_step_key(self, key: jax.Array) -> tuple[jax.Array, jax.Array]:
        """``(key_step, key_reset)``, as craftax's `EnvironmentAutoReset.step` splits it."""
        key_step, key_reset = jax.random.split(key)
        return key_step, key_reset

    def suite_reset(self, key: jax.Array, params: CraftaxEnvParams) -> Reset:
        obs, game_state = self.craftax_env.reset_env(key, params.game)
        return Reset(game_state, obs)

    def suite_step(self, key: jax.Array, suite_state, action: jax.Array, params: CraftaxEnvParams) -> Transition:
        """craftax's step: its ``done`` without the time limit is the termination; info: craftax's metrics."""
        obs, game_state, reward, done, info = self.craftax_env.step_env(key, suite_state, action, params.game)
        terminated = self.craftax_env.is_terminal(game_state, params.game.replace(max_timesteps=_NEVER))
        return Transition(game_state, obs, reward, terminated, truncated=done, info=info)


def make_craftax_env(name: str, **kwargs) -> tuple[CraftaxEnv, CraftaxEnvParams]:
    """A Craftax environment adapted to gymnax 1.0's interface, and its default params.

    Args:
      name: one of `CRAFTAX_NAMES`, e.g. "Craftax-Classic-Symbolic-v1".
      **kwargs: fields of craftax's ``EnvParams`` for the default params, e.g. ``max_timesteps`` (the time limit),
        ``day_length``.

    Raises:
      ValueError: craftax is not installed, `name` is not a Craftax environment (the names are listed), or a key of
        `kwargs` is not a field of craftax's ``EnvParams`` (the fields are listed).
    """
    craftax_env = craftax_check(name).make_craftax_env_from_name(name, auto_reset=False)
    game_params = craftax_env.default_params
    fields = list(getattr(game_params, "__dataclass_fields__", {}))
    unknown = sorted(set(kwargs) - set(fields))
    if unknown:
        raise ValueError(f"craftax:{name} has no env param(s) {unknown}; craftax's EnvParams has {fields}")
    game_params = game_params.replace(**kwargs)
    check_time_limit(game_params.max_timesteps, "max_timesteps")
    return built(lambda: CraftaxEnv(craftax_env, name, game_params))


def craftax_check(name: str):
    """``craftax.craftax_env``, once craftax is installed and `name` is one of its environments (else
    `import_suite`'s error)."""
    return import_suite("craftax", name, "craftax.craftax_env", lambda _: CRAFTAX_NAMES, "Craftax")
