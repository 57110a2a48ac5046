"""Brax environments behind gymnax 1.0's interface (the optional extra: ``pip install "purejaxppo[brax]"``).

    config = PPOConfig(env_name="brax:hopper", normalize_observations=True, ...)   # envs.make_base_env calls:
    env, env_params = make_brax_env("hopper", episode_length=1000, backend="positional")

`make_brax_env` wraps the bare environment from ``brax.envs.get_environment`` (none of Brax's training wrappers: no
`EpisodeWrapper`, no `AutoResetWrapper`, no `VmapWrapper`) as a `BraxEnv` (on `purejaxppo.envs.suites.base.SuiteEnv`):

* ``reset(key, params) -> (obs [obs_dim], SuiteState)``, ``state.suite_state`` Brax's `State`
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

import jax
import jax.numpy as jnp
import numpy as np
from gymnax.environments import spaces

from purejaxppo.envs.suites.base import (Reset, SuiteEnv, SuiteParams, Transition, built, check_time_limit,
                                         import_suite, python_numbers_as_float32)

DEFAULT_EPISODE_LENGTH = 1000


class BraxEnv(SuiteEnv):
    """One Brax environment with gymnax 1.0's `reset`/`step` (see the module docstring for the episode semantics)."""

    prefix = "brax"

    def __init__(self, brax_env, name: str, episode_length: int = DEFAULT_EPISODE_LENGTH):
        params = SuiteParams(check_time_limit(episode_length, "episode_length"))
        size = brax_env.observation_size
        if not isinstance(size, int):
            raise ValueError(f"brax:{name} has structured observations {size!r}; only flat vectors are supported")
        self.brax_env = brax_env
        action_size = int(brax_env.action_size)
        low, high = _control_range(brax_env, action_size)
        super().__init__(name, (size,), spaces.Box(low, high, (action_size,), jnp.float32), params)

    def suite_reset(self, key: jax.Array, params: SuiteParams) -> Reset:
        brax_state = python_numbers_as_float32(self.brax_env.reset(key))
        return Reset(brax_state, brax_state.obs)

    def suite_step(self, key: jax.Array, suite_state, action: jax.Array, params: SuiteParams) -> Transition:
        """Brax's step: terminated is its ``done``, info its metrics."""
        brax_state = python_numbers_as_float32(self.brax_env.step(suite_state, action))
        return Transition(brax_state, brax_state.obs, brax_state.reward, brax_state.done > 0.5, info=brax_state.metrics)


def _control_range(brax_env, action_size: int) -> tuple[np.ndarray, np.ndarray]:
    """The actuators' [low, high] per action dimension, or [-1, 1] when the environment does not say."""
    ranges = getattr(getattr(getattr(brax_env, "sys", None), "actuator", None), "ctrl_range", None)
    if ranges is None:
        return -np.ones(action_size, np.float32), np.ones(action_size, np.float32)
    ranges = np.asarray(ranges, np.float32).reshape(action_size, 2)
    return ranges[:, 0], ranges[:, 1]


def make_brax_env(name: str, episode_length: int = DEFAULT_EPISODE_LENGTH, **kwargs) -> tuple[BraxEnv, SuiteParams]:
    """A Brax environment adapted to gymnax 1.0's interface, and its default params.

    Args:
      name: a Brax environment name (``brax.envs.get_environment``), e.g. "hopper", "ant", "halfcheetah".
      episode_length: the time limit in steps (``params.max_steps_in_episode``), as Brax's `episode_length`.
      **kwargs: passed to the Brax environment's constructor (e.g. ``backend="positional"``).

    Raises:
      ValueError: brax is not installed, or `name` is not a Brax environment (the registered names are listed).
    """
    brax_envs = brax_check(name)
    return built(lambda: BraxEnv(brax_envs.get_environment(name, **kwargs), name, episode_length))


def brax_check(name: str):
    """``brax.envs``, once brax is installed and `name` is one of its environments (else `import_suite`'s error)."""
    return import_suite("brax", name, "brax.envs", lambda envs: sorted(getattr(envs, "_envs", {})), "Brax")
