"""NAVIX gridworlds (MiniGrid in JAX) behind gymnax 1.0's interface (the optional extra: ``pip install
"purejaxppo[navix]"``).

    config = PPOConfig(env_name="navix:Navix-DoorKey-5x5-v0", ...)      # envs.make_base_env calls:
    env, env_params = make_navix_env("Navix-DoorKey-5x5-v0", max_steps=100, observation="symbolic")

`make_navix_env` builds the environment with ``navix.make`` and wraps it as a `NavixEnv` (on
`purejaxppo.envs.suites.base.SuiteEnv`):

* ``reset(key, params) -> (obs [obs_dim] float32, SuiteState)``, ``state.suite_state`` navix's `Timestep`
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

import jax
import jax.numpy as jnp
from gymnax.environments import spaces

from purejaxppo.envs.suites.base import Reset, SuiteEnv, SuiteParams, Transition, built, check_time_limit, import_suite

DEFAULT_MAX_STEPS = 100  # navix.make's own default
OBSERVATIONS = (
    "symbolic", "symbolic_first_person", "categorical", "categorical_first_person", "rgb", "rgb_first_person",
)
DEFAULT_OBSERVATION = "symbolic"
TERMINATION = 2  # navix.environments.environment.StepType.TERMINATION


class NavixEnv(SuiteEnv):
    """One navix environment with gymnax 1.0's `reset`/`step` (see the module docstring for the episode semantics)."""

    prefix = "navix"

    def __init__(self, navix_env, name: str, observation: str = DEFAULT_OBSERVATION):
        self.navix_env = navix_env
        self._rgb = observation.startswith("rgb")
        obs_size = math.prod(jax.eval_shape(self._navix_reset, jax.random.key(0)).observation.shape)
        super().__init__(name, (obs_size,), spaces.Discrete(len(navix_env.action_set)),
                         SuiteParams(int(navix_env.max_steps)), obs_low=0.0, obs_high=255.0)

    def _navix_reset(self, key: jax.Array):
        """navix's reset. Only the rgb views read the rendering cache (the grid's background sprites, about 3 KiB a
        cell); the others get a one-pixel stand-in, so the state the rollout carries and selects stays small."""
        if self._rgb:
            return self.navix_env.reset(key)
        from navix.rendering.cache import RenderingCache  # the optional extra: imported only when navix is used

        return self.navix_env.reset(key, RenderingCache(patches=jnp.zeros((1, 1, 1, 3), jnp.uint8)))

    def suite_reset(self, key: jax.Array, params: SuiteParams) -> Reset:
        timestep = _canonical(self._navix_reset(key))
        return Reset(timestep, timestep.observation)

    def suite_step(self, key: jax.Array, suite_state, action: jax.Array, params: SuiteParams) -> Transition:
        """navix's transition without its auto-reset (`Environment.step` would reset instead of acting after an end):
        terminated is its ``StepType.TERMINATION``; its own time limit is the base's (``params``)."""
        timestep = _canonical(self.navix_env._step(suite_state, jnp.asarray(action, jnp.int32)))
        return Transition(timestep, timestep.observation, timestep.reward, timestep.step_type == TERMINATION)


def _canonical(timestep):
    """navix's Timestep with fixed dtypes (reset and step must give the same tree to select between them)."""
    return timestep.replace(
        t=jnp.asarray(timestep.t, jnp.int32),
        action=jnp.asarray(timestep.action, jnp.int32),
        reward=jnp.asarray(timestep.reward, jnp.float32),
        step_type=jnp.asarray(timestep.step_type, jnp.int32),
        info={k: jnp.asarray(v, jnp.float32) for k, v in timestep.info.items()},
    )


def make_navix_env(
    name: str, max_steps: int = DEFAULT_MAX_STEPS, observation: str = DEFAULT_OBSERVATION, **kwargs
) -> tuple[NavixEnv, SuiteParams]:
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
    check_time_limit(max_steps, "max_steps")
    if observation not in OBSERVATIONS:
        raise ValueError(f"observation must be one of {list(OBSERVATIONS)}, got {observation!r}")
    observation_fn = getattr(navix.observations, observation)
    return built(lambda: NavixEnv(navix.make(name, max_steps=max_steps, observation_fn=observation_fn, **kwargs), name,
                                  observation))


def navix_check(name: str):
    """``navix``, once it is installed and `name` is one of its environments (else `import_suite`'s error)."""
    return import_suite("navix", name, "navix", lambda navix: sorted(navix.registry()), "navix")
