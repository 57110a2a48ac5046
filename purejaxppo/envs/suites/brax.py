"""Brax environments behind gymnax 1.0's interface (the optional extra: ``pip install "purejaxppo[brax]"``).

    config = PPOConfig(env_name="brax:hopper", normalize_observations=True, ...)   # envs.make_base_env calls:
    env, env_params = make_brax_env("hopper", episode_length=1000, backend="positional")

`make_brax_env` wraps the bare environment from ``brax.envs.get_environment`` (none of Brax's training wrappers: no
`EpisodeWrapper`, no `AutoResetWrapper`, no `VmapWrapper`) as a `BraxGymnaxEnv`:

* ``reset(key, params) -> (obs [obs_dim], BraxEnvState)``
* ``step(key, state, action, params) -> (obs, state, reward, terminated, truncated, info)``, one environment
  (batch with `jax.vmap`, as for any gymnax environment).

Episode ends, kept apart as PPO needs them (``purejaxppo.core.gae`` bootstraps truncations and not terminations):

* ``terminated`` is Brax's own ``done`` (e.g. the hopper fell);
* ``truncated`` is the time limit: the step counter reached ``params.max_steps_in_episode`` (`episode_length`) on a
  step that did not terminate, exactly Brax's ``EpisodeWrapper`` ``info["truncation"]``.

Auto-reset: on a step that ends the episode, `obs` and the state already belong to a freshly reset episode (a new
random initial state from the step's key, not a cached one as in Brax's `AutoResetWrapper`), and
``info["final_observation"]`` is the pre-reset observation, whose value bootstraps a truncated episode. The reset is
computed every step and selected where the episode ended (as gymnax does), which costs one extra pipeline init per step.

Observation normalisation: Brax observations are unscaled physical quantities (positions, velocities, contact
forces), so train them with ``normalize_observations=True`` (running statistics kept in the training state); the
usual Brax PPO settings also normalise rewards or scale them.

Actions: a `gymnax.environments.spaces.Box` over the actuators' control range (``sys.actuator.ctrl_range``, [-1, 1]
when the environment has none); purejaxppo clips the Gaussian's samples into it before the environment sees them.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import environment, spaces

from purejaxppo.extras import import_extra

DEFAULT_EPISODE_LENGTH = 1000


@struct.dataclass
class BraxEnvParams:
    """max_steps_in_episode: the time limit; reaching it truncates the episode (Brax's `episode_length`)."""

    max_steps_in_episode: int = DEFAULT_EPISODE_LENGTH


@struct.dataclass
class BraxEnvState:
    """brax_state: Brax's `State` of the current episode. time: [] int32, steps taken in the current episode."""

    brax_state: Any
    time: jax.Array


class BraxGymnaxEnv(environment.Environment):
    """One Brax environment with gymnax 1.0's `reset`/`step` (see the module docstring for the episode semantics)."""

    def __init__(self, brax_env, name: str, episode_length: int = DEFAULT_EPISODE_LENGTH):
        if not isinstance(episode_length, int) or isinstance(episode_length, bool) or episode_length < 1:
            raise ValueError(f"episode_length must be an integer >= 1, got {episode_length!r}")
        self.brax_env = brax_env
        self._name = name
        self._episode_length = episode_length
        size = brax_env.observation_size
        if not isinstance(size, int):
            raise ValueError(f"brax:{name} has structured observations {size!r}; only flat vectors are supported")
        self._obs_size = size
        self._action_size = int(brax_env.action_size)
        self._action_low, self._action_high = _control_range(brax_env, self._action_size)

    @property
    def name(self) -> str:
        return f"brax:{self._name}"

    @property
    def default_params(self) -> BraxEnvParams:
        return BraxEnvParams(max_steps_in_episode=self._episode_length)

    @partial(jax.jit, static_argnames=("self",))
    def reset(self, key: jax.Array, params: BraxEnvParams | None = None) -> tuple[jax.Array, BraxEnvState]:
        """A new episode: ``(obs [obs_dim] float32, state)``."""
        brax_state = self.brax_env.reset(key)
        return _obs(brax_state), BraxEnvState(_as_arrays(brax_state), jnp.zeros((), jnp.int32))

    @partial(jax.jit, static_argnames=("self",))
    def step(self, key: jax.Array, state: BraxEnvState, action: jax.Array, params: BraxEnvParams | None = None):
        """One step with auto-reset; returns ``(obs, state, reward, terminated, truncated, info)``.

        action: [action_dim]. reward: [] float32. terminated, truncated: [] bool (never both).
        info: Brax's metrics of the step and "final_observation" (the pre-reset observation [obs_dim]).
        """
        params = self.default_params if params is None else params
        next_brax = _as_arrays(self.brax_env.step(state.brax_state, action))
        time = state.time + 1
        terminated = next_brax.done > 0.5
        truncated = jnp.logical_and(time >= params.max_steps_in_episode, ~terminated)
        done = terminated | truncated
        reset_obs, reset_state = self.reset(key, params)
        stepped = BraxEnvState(next_brax, time)
        if jax.tree.structure(reset_state) != jax.tree.structure(stepped):
            raise ValueError(
                f"brax:{self._name}: the state after step has a different structure from the state after reset, "
                "so the episode cannot be auto-reset by selection"
            )
        final_obs = _obs(next_brax)
        select = lambda a, b: jnp.where(done, a, b.astype(a.dtype))  # noqa: E731
        new_state = jax.tree.map(select, reset_state, stepped)
        info = {**next_brax.metrics, "final_observation": final_obs}
        return select(reset_obs, final_obs), new_state, next_brax.reward.astype(jnp.float32), terminated, truncated, info

    def action_space(self, params: BraxEnvParams | None = None) -> spaces.Box:
        return spaces.Box(self._action_low, self._action_high, (self._action_size,), jnp.float32)

    def observation_space(self, params: BraxEnvParams | None = None) -> spaces.Box:
        return spaces.Box(-jnp.inf, jnp.inf, (self._obs_size,), jnp.float32)

    @property
    def num_actions(self) -> int:
        return self._action_size


def _as_arrays(brax_state):
    """Brax's state with Python-number leaves (e.g. some metrics) as float32 arrays, so reset and step states match."""
    return jax.tree.map(lambda x: jnp.asarray(x, jnp.float32) if isinstance(x, (int, float)) else x, brax_state)


def _obs(brax_state) -> jax.Array:
    return jnp.asarray(brax_state.obs, jnp.float32)


def _control_range(brax_env, action_size: int) -> tuple[np.ndarray, np.ndarray]:
    """The actuators' [low, high] per action dimension, or [-1, 1] when the environment does not say."""
    ranges = getattr(getattr(getattr(brax_env, "sys", None), "actuator", None), "ctrl_range", None)
    if ranges is None:
        return -np.ones(action_size, np.float32), np.ones(action_size, np.float32)
    ranges = np.asarray(ranges, np.float32).reshape(action_size, 2)
    return ranges[:, 0], ranges[:, 1]


def make_brax_env(name: str, episode_length: int = DEFAULT_EPISODE_LENGTH, **kwargs) -> tuple[BraxGymnaxEnv,
                                                                                            BraxEnvParams]:
    """A Brax environment adapted to gymnax 1.0's interface, and its default params.

    Args:
      name: a Brax environment name (``brax.envs.get_environment``), e.g. "hopper", "ant", "halfcheetah".
      episode_length: the time limit in steps (``params.max_steps_in_episode``), as Brax's `episode_length`.
      **kwargs: passed to the Brax environment's constructor (e.g. ``backend="positional"``).

    Raises:
      ValueError: brax is not installed, or `name` is not a Brax environment (the registered names are listed).
    """
    brax_envs = brax_envs_module(name)
    # Concrete arrays even when called inside a trace (`evaluate` under `jax.jit` builds its environment there):
    # Brax computes the system's constants with jnp, and the adapter reads the control range with NumPy.
    with jax.ensure_compile_time_eval():
        env = BraxGymnaxEnv(brax_envs.get_environment(name, **kwargs), name, episode_length)
    return env, env.default_params


def brax_envs_module(name: str):
    """``brax.envs``, after checking that brax is installed and that `name` is one of its environments.

    Raises:
      ValueError: brax is not installed, or `name` is not a Brax environment (the registered names are listed).
    """
    brax_envs = import_extra("brax.envs", f"brax:{name}", "brax")
    registered = sorted(getattr(brax_envs, "_envs", {}))
    if registered and name not in registered:
        raise ValueError(f"'{name}' is not a Brax environment; registered: {', '.join(registered)}")
    return brax_envs
