"""MuJoCo Playground environments behind gymnax 1.0's interface (the optional extra:
``pip install "purejaxppo[playground]"``).

    config = PPOConfig(env_name="playground:CartpoleBalance", normalize_observations=True, ...)
    env, env_params = make_playground_env("CartpoleBalance", episode_length=1000, impl="jax")

Playground environments (``mujoco_playground.registry``) are MJX environments with a Brax-like ``State`` (``data``,
``obs``, ``reward``, ``done``, ``metrics``, ``info``). `make_playground_env` wraps the bare environment from
``registry.load`` (none of Playground's training wrappers: no ``wrap_for_brax_training``, no `EpisodeWrapper`, no
auto-reset wrapper, no `VmapWrapper`) as a `PlaygroundGymnaxEnv`:

* ``reset(key, params) -> (obs [obs_dim], PlaygroundEnvState)``
* ``step(key, state, action, params) -> (obs, state, reward, terminated, truncated, info)``, one environment
  (batch with `jax.vmap`, as for any gymnax environment).

Episode ends, kept apart as PPO needs them (``purejaxppo.core.gae`` bootstraps truncations and not terminations):

* ``terminated`` is the environment's own ``done`` (in the DM Control Suite tasks only a NaN in the physics state);
* ``truncated`` is the time limit: the step counter reached ``params.max_steps_in_episode`` (`episode_length`, by
  default the task's own ``config.episode_length``, 1000 for most DM Control tasks) on a step that did not terminate,
  exactly Brax's ``EpisodeWrapper`` ``info["truncation"]`` that Playground's PPO training uses.

Auto-reset: on a step that ends the episode, `obs` and the state already belong to a freshly reset episode (a new
random initial state from the step's key), and ``info["final_observation"]`` is the pre-reset observation, whose value
bootstraps a truncated episode. The reset is computed every step and selected where the episode ended.

Physics: ``impl="jax"`` (MJX's JAX implementation, which runs on CPU and GPU) unless `impl` says otherwise; Playground's
own default is "warp" (NVIDIA Warp, GPU only). Other keyword arguments are overrides of the task's config
(``registry.load(name, config_overrides=...)``), e.g. ``ctrl_dt=0.02``. `action_repeat` is not supported.

Observations: flat float32 vectors. A task whose observation is a dict contributes its ``"state"`` entry (flattened);
pixel-only tasks are refused. Actions: a `gymnax.environments.spaces.Box` over the actuators' control range
(``mj_model.actuator_ctrlrange`` where the actuator is ctrl-limited, [-1, 1] otherwise).

Assets: the DM Control Suite tasks ship their XML inside the package and build offline; Playground's locomotion and
manipulation tasks clone the MuJoCo Menagerie from GitHub the first time one is built.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import environment, spaces

from purejaxppo.extras import import_extra

DEFAULT_IMPL = "jax"


@struct.dataclass
class PlaygroundEnvParams:
    """max_steps_in_episode: the time limit; reaching it truncates the episode (Playground's `episode_length`)."""

    max_steps_in_episode: int = 1000


@struct.dataclass
class PlaygroundEnvState:
    """env_state: Playground's `State` of the current episode. time: [] int32, steps taken in the current episode."""

    env_state: Any
    time: jax.Array


class PlaygroundGymnaxEnv(environment.Environment):
    """One Playground environment with gymnax 1.0's `reset`/`step` (see the module docstring for the semantics)."""

    def __init__(self, playground_env, name: str, episode_length: int):
        if not isinstance(episode_length, int) or isinstance(episode_length, bool) or episode_length < 1:
            raise ValueError(f"episode_length must be an integer >= 1, got {episode_length!r}")
        self.playground_env = playground_env
        self._name = name
        self._episode_length = episode_length
        abstract = jax.eval_shape(playground_env.reset, jax.random.PRNGKey(0))
        self._obs_size = int(np.prod(_flat_obs_shape(abstract.obs, name)))
        self._action_size = int(playground_env.action_size)
        self._action_low, self._action_high = _control_range(playground_env, self._action_size)

    @property
    def name(self) -> str:
        return f"playground:{self._name}"

    @property
    def default_params(self) -> PlaygroundEnvParams:
        return PlaygroundEnvParams(max_steps_in_episode=self._episode_length)

    @partial(jax.jit, static_argnames=("self",))
    def reset(self, key: jax.Array, params: PlaygroundEnvParams | None = None):
        """A new episode: ``(obs [obs_dim] float32, state)``."""
        env_state = _as_arrays(self.playground_env.reset(_raw_key(key)))
        return _obs(env_state), PlaygroundEnvState(env_state, jnp.zeros((), jnp.int32))

    @partial(jax.jit, static_argnames=("self",))
    def step(self, key: jax.Array, state: PlaygroundEnvState, action: jax.Array,
             params: PlaygroundEnvParams | None = None):
        """One step with auto-reset; returns ``(obs, state, reward, terminated, truncated, info)``.

        action: [action_dim]. reward: [] float32. terminated, truncated: [] bool (never both).
        info: the task's metrics of the step and "final_observation" (the pre-reset observation [obs_dim]).
        """
        params = self.default_params if params is None else params
        next_state = _as_arrays(self.playground_env.step(state.env_state, action))
        time = state.time + 1
        terminated = next_state.done > 0.5
        truncated = jnp.logical_and(time >= params.max_steps_in_episode, ~terminated)
        done = terminated | truncated
        reset_obs, reset_state = self.reset(key, params)
        stepped = PlaygroundEnvState(next_state, time)
        if jax.tree.structure(reset_state) != jax.tree.structure(stepped):
            raise ValueError(
                f"playground:{self._name}: the state after step has a different structure from the state after "
                "reset, so the episode cannot be auto-reset by selection"
            )
        final_obs = _obs(next_state)
        select = lambda a, b: jnp.where(done, a, b.astype(a.dtype))  # noqa: E731
        new_state = jax.tree.map(select, reset_state, stepped)
        info = {**next_state.metrics, "final_observation": final_obs}
        reward = jnp.asarray(next_state.reward, jnp.float32)
        return select(reset_obs, final_obs), new_state, reward, terminated, truncated, info

    def action_space(self, params: PlaygroundEnvParams | None = None) -> spaces.Box:
        return spaces.Box(self._action_low, self._action_high, (self._action_size,), jnp.float32)

    def observation_space(self, params: PlaygroundEnvParams | None = None) -> spaces.Box:
        return spaces.Box(-jnp.inf, jnp.inf, (self._obs_size,), jnp.float32)

    @property
    def num_actions(self) -> int:
        return self._action_size


def _raw_key(key: jax.Array) -> jax.Array:
    """Playground's tasks split and store raw uint32[2] keys (``info["rng"]``); a typed key becomes its raw data."""
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return jax.random.key_data(key)
    return key


def _as_arrays(env_state):
    """The state with Python-number leaves as float32 arrays, so reset and step states have the same structure."""
    return jax.tree.map(lambda x: jnp.asarray(x, jnp.float32) if isinstance(x, (int, float)) else x, env_state)


def _state_obs(obs):
    """The observation vector of a Playground observation (an array, or a dict holding "state")."""
    if isinstance(obs, Mapping):
        return obs["state"]
    return obs


def _flat_obs_shape(obs, name: str) -> tuple[int, ...]:
    if isinstance(obs, Mapping) and "state" not in obs:
        raise ValueError(
            f"playground:{name} has dict observations without a 'state' entry ({', '.join(sorted(obs))}); "
            "only flat state vectors are supported"
        )
    return tuple(_state_obs(obs).shape)


def _obs(env_state) -> jax.Array:
    return jnp.asarray(_state_obs(env_state.obs), jnp.float32).reshape(-1)


def _control_range(playground_env, action_size: int) -> tuple[np.ndarray, np.ndarray]:
    """The actuators' [low, high] per action dimension ([-1, 1] for an actuator without a control limit)."""
    low, high = -np.ones(action_size, np.float32), np.ones(action_size, np.float32)
    model = getattr(playground_env, "mj_model", None)
    if model is None or int(model.nu) != action_size:
        return low, high
    ranges = np.asarray(model.actuator_ctrlrange, np.float32).reshape(action_size, 2)
    limited = np.asarray(model.actuator_ctrllimited).reshape(action_size).astype(bool)
    low = np.where(limited, ranges[:, 0], low).astype(np.float32)
    high = np.where(limited, ranges[:, 1], high).astype(np.float32)
    return low, high


def make_playground_env(name: str, episode_length: int | None = None, impl: str = DEFAULT_IMPL,
                        **config_overrides) -> tuple[PlaygroundGymnaxEnv, PlaygroundEnvParams]:
    """A Playground environment adapted to gymnax 1.0's interface, and its default params.

    Args:
      name: a Playground environment name (``mujoco_playground.registry.ALL_ENVS``), e.g. "CartpoleBalance".
      episode_length: the time limit in steps (``params.max_steps_in_episode``); None: the task's config's
        ``episode_length`` (as Playground's PPO training uses).
      impl: MJX's implementation, "jax" (CPU or GPU) or "warp" (NVIDIA GPUs).
      **config_overrides: overrides of the task's config (``registry.load(..., config_overrides=...)``).

    Raises:
      ValueError: playground is not installed, or `name` is not a Playground environment (the names are listed).
    """
    registry = playground_registry(name)
    overrides = {**config_overrides, "impl": impl}
    # Concrete arrays even when called inside a trace (`evaluate` under `jax.jit` builds its environment there).
    with jax.ensure_compile_time_eval():
        playground_env = registry.load(name, config_overrides=overrides)
        if episode_length is None:
            config = getattr(playground_env, "_config", None) or registry.get_default_config(name)
            episode_length = int(config.episode_length)
        env = PlaygroundGymnaxEnv(playground_env, name, episode_length)
    return env, env.default_params


def playground_registry(name: str):
    """``mujoco_playground.registry``, after checking that playground is installed and that `name` is registered.

    Raises:
      ValueError: playground is not installed, or `name` is not a Playground environment (the names are listed).
    """
    registry = import_extra("mujoco_playground", f"playground:{name}", "playground").registry
    registered = list(getattr(registry, "ALL_ENVS", ()))
    if registered and name not in registered:
        raise ValueError(f"'{name}' is not a Playground environment; registered: {', '.join(registered)}")
    return registry


def playground_check(name: str) -> None:
    """Raise a one-line ValueError unless playground is installed and `name` is one of its environments."""
    playground_registry(name)
