"""Environments: the interface the pipeline steps, the wrappers every environment runs through, and the suites.

- `spec`: `EnvSpec` (what the network and the rollout need to know), `EnvStep` and `Env`, the vectorised container
  the pipeline calls (``Env.reset(keys)``, ``Env.step(keys, state, action)``).
- `wrappers`: the stack around every JAX environment (observations as arrays, clipped continuous actions, episode
  statistics across auto-reset).
- `suites/`: one adapter per optional suite (brax, playground, craftax, jumanji, navix), each on the one base
  `suites.base`, and `registry`: the env_name prefix of each suite (`SUITES`) and the checks of names and env_kwargs.
- `make`: `make_env(env_name, env_kwargs)` builds, wraps and describes any of them.

May import: jax, gymnax, the core layer below it and `purejaxppo.extras`; never config, models, training or above.
The user-facing names are re-exported here: ``from purejaxppo.envs import make_env, Env, EnvSpec``.
"""

from purejaxppo.envs.make import check_buildable, check_env_config, make_base_env, make_env, short_error
from purejaxppo.envs.registry import (
                                      NEEDS_NETWORK,
                                      SUITES,
                                      Suite,
                                      check_env_kwargs,
                                      check_env_name,
                                      env_kwarg_names,
                                      registered_env_names,
                                      suite_installed,
                                      suite_of,
)
from purejaxppo.envs.spec import Env, EnvSpec, EnvStep, action_mask
from purejaxppo.envs.wrappers import ClipAction, EpisodeStatistics, EpisodeStatisticsState, ObservationToArray, Wrapper

__all__ = [
    "NEEDS_NETWORK", "SUITES", "ClipAction", "Env", "EnvSpec", "EnvStep", "EpisodeStatistics", "EpisodeStatisticsState",
    "ObservationToArray", "Suite", "Wrapper", "action_mask", "check_buildable", "check_env_config", "check_env_kwargs",
    "check_env_name", "env_kwarg_names", "make_base_env", "make_env", "registered_env_names", "short_error",
    "suite_installed", "suite_of",
]
