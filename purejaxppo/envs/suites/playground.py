"""MuJoCo Playground environments behind gymnax 1.0's interface (the optional extra:
``pip install "purejaxppo[playground]"``).

    config = PPOConfig(env_name="playground:CartpoleBalance", normalize_observations=True, ...)
    env, env_params = make_playground_env("CartpoleBalance", episode_length=1000, impl="jax")

Playground environments (``mujoco_playground.registry``) are MJX environments with a Brax-like ``State`` (``data``,
``obs``, ``reward``, ``done``, ``metrics``, ``info``). `make_playground_env` wraps the bare environment from
``registry.load`` (none of Playground's training wrappers: no ``wrap_for_brax_training``, no `EpisodeWrapper`, no
auto-reset wrapper, no `VmapWrapper`) as a `PlaygroundEnv` (on `purejaxppo.envs.suites.base.SuiteEnv`):

* ``reset(key, params) -> (obs [obs_dim], SuiteState)``, ``state.suite_state`` Playground's `State`
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

import math
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np
from gymnax.environments import spaces

from purejaxppo.core.streams import is_key
from purejaxppo.envs.suites.base import (Reset, SuiteEnv, SuiteParams, Transition, built, check_time_limit,
                                         import_suite, python_numbers_as_float32)

DEFAULT_IMPL = "jax"


class PlaygroundEnv(SuiteEnv):
    """One Playground environment with gymnax 1.0's `reset`/`step` (see the module docstring for the semantics)."""

    prefix = "playground"

    def __init__(self, playground_env, name: str, episode_length: int):
        params = SuiteParams(check_time_limit(episode_length, "episode_length"))
        self.playground_env = playground_env
        obs = jax.eval_shape(playground_env.reset, jax.random.PRNGKey(0)).obs
        if isinstance(obs, Mapping) and "state" not in obs:
            raise ValueError(f"playground:{name} has dict observations without a 'state' entry "
                             f"({', '.join(sorted(obs))}); only flat state vectors are supported")
        action_size = int(playground_env.action_size)
        low, high = _control_range(playground_env, action_size)
        super().__init__(name, (math.prod(_state_obs(obs).shape),), spaces.Box(low, high, (action_size,), jnp.float32),
                         params)

    def suite_reset(self, key: jax.Array, params: SuiteParams) -> Reset:
        env_state = python_numbers_as_float32(self.playground_env.reset(_raw_key(key)))
        return Reset(env_state, _state_obs(env_state.obs))

    def suite_step(self, key: jax.Array, suite_state, action: jax.Array, params: SuiteParams) -> Transition:
        """The task's step: terminated is its ``done``, info its metrics."""
        env_state = python_numbers_as_float32(self.playground_env.step(suite_state, action))
        return Transition(env_state, _state_obs(env_state.obs), env_state.reward, env_state.done > 0.5,
                          info=env_state.metrics)


def _raw_key(key: jax.Array) -> jax.Array:
    """Playground's tasks split and store raw uint32[2] keys (``info["rng"]``); a typed key becomes its raw data."""
    if is_key(key):
        return jax.random.key_data(key)
    return key


def _state_obs(obs):
    """The observation vector of a Playground observation (an array, or a dict holding "state")."""
    if isinstance(obs, Mapping):
        return obs["state"]
    return obs


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
                        **config_overrides) -> tuple[PlaygroundEnv, SuiteParams]:
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
    registry = playground_check(name).registry

    def build() -> PlaygroundEnv:
        playground_env = registry.load(name, config_overrides={**config_overrides, "impl": impl})
        if episode_length is not None:
            return PlaygroundEnv(playground_env, name, episode_length)
        config = getattr(playground_env, "_config", None) or registry.get_default_config(name)
        return PlaygroundEnv(playground_env, name, int(config.episode_length))

    return built(build)


def playground_check(name: str):
    """``mujoco_playground``, once playground is installed and `name` is one of its environments (else
    `import_suite`'s error)."""
    return import_suite("playground", name, "mujoco_playground",
                        lambda playground: getattr(playground.registry, "ALL_ENVS", ()), "Playground")
