"""NAVIX gridworlds (MiniGrid in JAX) behind gymnax 1.0's interface (the optional extra: ``pip install
"purejaxppo[navix]"``).

    config = PPOConfig(env_name="navix:Navix-DoorKey-5x5-v0", ...)      # envs.make_base_env calls:
    env, env_params = make_navix_env("Navix-DoorKey-5x5-v0", max_steps=100, observation="symbolic")

`make_navix_env` builds the environment with ``navix.make`` and wraps it as a `NavixGymnaxEnv`:

* ``reset(key, params) -> (obs [obs_dim] float32, NavixEnvState)``
* ``step(key, state, action, params) -> (obs, state, reward, terminated, truncated, info)``, one environment
  (batch with `jax.vmap`, as for any gymnax environment).

Observations: navix's ``symbolic`` view by default, the whole grid as MiniGrid's (object, colour, state) triple per
cell, ``[H, W, 3]`` small integers, flattened to a float32 vector of ``H * W * 3`` for the MLP torso. It is what
navix's own PPO baselines train on (``baselines/ppo.py`` flattens ``symbolic`` the same way), and a full view of the
grid makes the rooms Markov, so a feed-forward policy needs no memory. ``observation=`` picks another of navix's
observation functions (``symbolic_first_person``, ``categorical``, ``categorical_first_person``, ``rgb``,
``rgb_first_person``); each is flattened the same way.

Episode ends, kept apart as PPO needs them (``purejaxppo.core.gae`` bootstraps truncations and not terminations):

* ``terminated`` is navix's ``StepType.TERMINATION`` (the goal reached, lava stepped on, ...);
* ``truncated`` is the time limit: the step counter reached ``params.max_steps_in_episode`` (navix's `max_steps`) on
  a step that did not terminate, as navix's own ``StepType.TRUNCATION`` (termination wins when both happen).

Auto-reset: the adapter steps navix's environment without navix's own auto-reset (which resets on the call *after*
the ending step, from the state's key, and so spends an action on it). On a step that ends the episode, `obs` and the
state already belong to a freshly reset episode (from the step's key), and ``info["final_observation"]`` is the
pre-reset observation, whose value bootstraps a truncated episode. The reset is computed every step and selected where
the episode ended, as gymnax does.

Actions: a `gymnax.environments.spaces.Discrete` over navix's action set (7 MiniGrid actions by default).
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces

from purejaxppo.extras import import_extra

DEFAULT_MAX_STEPS = 100  # navix.make's own default
OBSERVATIONS = (
    "symbolic", "symbolic_first_person", "categorical", "categorical_first_person", "rgb", "rgb_first_person",
)
DEFAULT_OBSERVATION = "symbolic"


@struct.dataclass
class NavixEnvParams:
    """max_steps_in_episode: the time limit; reaching it truncates the episode (navix's `max_steps`)."""

    max_steps_in_episode: int = DEFAULT_MAX_STEPS


@struct.dataclass
class NavixEnvState:
    """timestep: navix's `Timestep` of the current episode (its ``t`` counts the steps taken in the episode)."""

    timestep: Any


class NavixGymnaxEnv(environment.Environment):
    """One navix environment with gymnax 1.0's `reset`/`step` (see the module docstring for the episode semantics)."""

    def __init__(self, navix_env, name: str, observation: str = DEFAULT_OBSERVATION):
        self.navix_env = navix_env
        self._name = name
        self._rgb = observation.startswith("rgb")
        self._obs_size = math.prod(jax.eval_shape(self._navix_reset, jax.random.key(0)).observation.shape)
        self._num_actions = len(navix_env.action_set)

    @property
    def name(self) -> str:
        return f"navix:{self._name}"

    @property
    def default_params(self) -> NavixEnvParams:
        return NavixEnvParams(max_steps_in_episode=int(self.navix_env.max_steps))

    def _navix_reset(self, key: jax.Array):
        """navix's reset. Only the rgb views read the rendering cache (the grid's background sprites, about 3 KiB a
        cell); the others get a one-pixel stand-in, so the state the rollout carries and selects stays small."""
        if self._rgb:
            return self.navix_env.reset(key)
        from navix.rendering.cache import RenderingCache  # the optional extra: imported only when navix is used

        return self.navix_env.reset(key, RenderingCache(patches=jnp.zeros((1, 1, 1, 3), jnp.uint8)))

    @partial(jax.jit, static_argnames=("self",))
    def reset(self, key: jax.Array, params: NavixEnvParams | None = None) -> tuple[jax.Array, NavixEnvState]:
        """A new episode: ``(obs [obs_dim] float32, state)``."""
        timestep = _canonical(self._navix_reset(key))
        return _obs(timestep), NavixEnvState(timestep)

    @partial(jax.jit, static_argnames=("self",))
    def step(self, key: jax.Array, state: NavixEnvState, action: jax.Array, params: NavixEnvParams | None = None):
        """One step with auto-reset; returns ``(obs, state, reward, terminated, truncated, info)``.

        action: [] int. reward: [] float32. terminated, truncated: [] bool (never both).
        info: "final_observation" (the pre-reset observation [obs_dim]).
        """
        from navix.environments.environment import StepType

        params = self.default_params if params is None else params
        # navix's transition without its auto-reset (`Environment.step` would reset instead of acting after an end)
        stepped = _canonical(self.navix_env._step(state.timestep, jnp.asarray(action, jnp.int32)))
        terminated = stepped.step_type == StepType.TERMINATION
        truncated = jnp.logical_and(stepped.t >= params.max_steps_in_episode, ~terminated)
        done = terminated | truncated
        reset_obs, reset_state = self.reset(key, params)
        final_obs = _obs(stepped)
        select = lambda a, b: jnp.where(done, a, b.astype(a.dtype))  # noqa: E731
        new_state = jax.tree.map(select, reset_state, NavixEnvState(stepped))
        info = {"final_observation": final_obs}
        return select(reset_obs, final_obs), new_state, stepped.reward.astype(jnp.float32), terminated, truncated, info

    def action_space(self, params: NavixEnvParams | None = None) -> spaces.Discrete:
        return spaces.Discrete(self._num_actions)

    def observation_space(self, params: NavixEnvParams | None = None) -> spaces.Box:
        return spaces.Box(0.0, 255.0, (self._obs_size,), jnp.float32)

    @property
    def num_actions(self) -> int:
        return self._num_actions


def _canonical(timestep):
    """navix's Timestep with fixed dtypes (reset and step must give the same tree to select between them)."""
    return timestep.replace(
        t=jnp.asarray(timestep.t, jnp.int32),
        action=jnp.asarray(timestep.action, jnp.int32),
        reward=jnp.asarray(timestep.reward, jnp.float32),
        step_type=jnp.asarray(timestep.step_type, jnp.int32),
        info={k: jnp.asarray(v, jnp.float32) for k, v in timestep.info.items()},
    )


def _obs(timestep) -> jax.Array:
    return jnp.ravel(timestep.observation).astype(jnp.float32)


def make_navix_env(
    name: str, max_steps: int = DEFAULT_MAX_STEPS, observation: str = DEFAULT_OBSERVATION, **kwargs
) -> tuple[NavixGymnaxEnv, NavixEnvParams]:
    """A navix environment adapted to gymnax 1.0's interface, and its default params.

    Args:
      name: a navix environment id (``navix.registry()``), e.g. "Navix-Empty-5x5-v0", "Navix-DoorKey-5x5-v0".
      max_steps: the time limit in steps (``params.max_steps_in_episode``), navix's `max_steps`.
      observation: the name of a navix observation function (`OBSERVATIONS`), flattened to a float32 vector.
      **kwargs: passed to navix's environment constructor (e.g. ``penality_coeff=0.9`` for MiniGrid's shrinking
        goal reward).

    Raises:
      ValueError: navix is not installed, `name` is not a navix environment (the registered names are listed), or
        a bad `max_steps` or `observation`.
    """
    navix = navix_check(name)
    if not isinstance(max_steps, int) or isinstance(max_steps, bool) or max_steps < 1:
        raise ValueError(f"max_steps must be an integer >= 1, got {max_steps!r}")
    if observation not in OBSERVATIONS:
        raise ValueError(f"observation must be one of {list(OBSERVATIONS)}, got {observation!r}")
    observation_fn = getattr(navix.observations, observation)
    # Concrete arrays even when called inside a trace (`evaluate` under `jax.jit` builds its environment there).
    with jax.ensure_compile_time_eval():
        env = NavixGymnaxEnv(
            navix.make(name, max_steps=max_steps, observation_fn=observation_fn, **kwargs), name, observation
        )
    return env, env.default_params


def navix_check(name: str):
    """``navix``, after checking that it is installed and that `name` is one of its environments.

    Raises:
      ValueError: navix is not installed, or `name` is not a navix environment (the registered names are listed).
    """
    navix = import_extra("navix", f"navix:{name}", "navix")
    registered = sorted(navix.registry())
    if name not in registered:
        raise ValueError(f"'{name}' is not a navix environment; registered: {', '.join(registered)}")
    return navix
