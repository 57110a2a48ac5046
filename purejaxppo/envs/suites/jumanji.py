"""Jumanji environments behind gymnax 1.0's interface (the optional extra: ``pip install "purejaxppo[jumanji]"``).

    config = PPOConfig(env_name="jumanji:Knapsack-v1", ...)      # envs.make_base_env calls:
    env, env_params = make_jumanji_env("Knapsack-v1")            # kwargs go to jumanji.make

`make_jumanji_env` wraps the bare environment from ``jumanji.make`` (none of Jumanji's wrappers: no
`AutoResetWrapper`, no `VmapWrapper`) as a `JumanjiEnv` (on `purejaxppo.envs.suites.base.SuiteEnv`):

* ``reset(key, params) -> (obs [obs_dim] float32, SuiteState)``, ``state.suite_state`` Jumanji's state and
  ``state.mask`` the legal actions
* ``step(key, state, action, params) -> (obs, state, reward, terminated, truncated, info)``, one environment
  (batch with `jax.vmap`, as for any gymnax environment).
* ``action_mask(state, params) -> bool[num_actions]``: the legal actions in `state` (Jumanji's
  ``observation.action_mask``), so purejaxppo samples only legal actions (``EnvSpec.has_action_mask``). Environments
  whose observation has no ``action_mask`` get no `action_mask` method.

Episode ends, read from Jumanji's `TimeStep` (``purejaxppo.core.gae`` bootstraps truncations and not terminations):

* ``terminated``: ``step_type == LAST`` with every discount 0 (Jumanji's ``termination``);
* ``truncated``: ``step_type == LAST`` with a discount > 0 (Jumanji's ``truncation``, e.g. Connector's time limit), or
  the adapter's own time limit ``params.max_steps_in_episode`` reached on a step that did not terminate. Many Jumanji
  environments (Snake, Maze, ...) report their own `time_limit` as a *termination* (discount 0); the adapter keeps
  Jumanji's word for it. ``max_steps_in_episode`` defaults to the environment's ``time_limit`` when it has one (so it
  never fires before Jumanji's own end) and to 1000 otherwise; pass ``max_steps_in_episode=`` to shorten episodes.

Auto-reset: on a step that ends the episode, `obs`, the mask and the state already belong to a freshly reset episode
(reset from the step's key), and ``info["final_observation"]`` is the pre-reset observation. The reset is computed
every step and selected where the episode ended (as gymnax does).

Observations: Jumanji's observations are structured (a NamedTuple of arrays). They are flattened to one float32
vector: every leaf in ``jax.tree.leaves`` order (for a NamedTuple, its field order, e.g. Knapsack-v1's ``weights,
values, packed_items, action_mask``), each raveled in C order, cast to float32 (booleans become 0/1), concatenated.
The action mask stays in the vector (it is part of what the agent observes).

Actions: a Jumanji ``DiscreteArray`` becomes ``gymnax.spaces.Discrete(num_values)``. A ``MultiDiscreteArray`` with
``num_values = [n_1, ..., n_k]`` becomes ``Discrete(n_1 * ... * n_k)`` (at most `MAX_FLAT_ACTIONS`), an index being
unravelled in C order (the last component varies fastest); its mask is the same-shaped mask raveled, or for a
per-component mask ``[k, max n]`` the product of the components' masks (a joint action is legal when each component
is). Other action specs (continuous ones) are refused with a ValueError.

Reward: float32; a per-agent reward (shape [k]) is summed.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from gymnax.environments import spaces

from purejaxppo.envs.suites.base import Reset, SuiteEnv, SuiteParams, Transition, built, check_time_limit, import_suite

DEFAULT_MAX_STEPS = 1000  # the time limit of environments without their own `time_limit`
MAX_FLAT_ACTIONS = 4096  # a MultiDiscrete action space is flattened only up to this many joint actions
LAST = 2  # jumanji.types.StepType.LAST


def flatten_observation(observation) -> jax.Array:
    """A Jumanji observation as one float32 vector: its leaves in ``jax.tree.leaves`` order, raveled, concatenated."""
    return jnp.concatenate([jnp.ravel(jnp.asarray(leaf)).astype(jnp.float32) for leaf in jax.tree.leaves(observation)])


class JumanjiEnv(SuiteEnv):
    """One Jumanji environment with gymnax 1.0's `reset`/`step` (see the module docstring for the semantics)."""

    prefix = "jumanji"

    def __init__(self, jumanji_env, name: str, max_steps_in_episode: int | None = None):
        if max_steps_in_episode is None:
            max_steps_in_episode = int(getattr(jumanji_env, "time_limit", None) or DEFAULT_MAX_STEPS)
        params = SuiteParams(check_time_limit(max_steps_in_episode, "max_steps_in_episode"))
        self.jumanji_env = jumanji_env
        self._action_shape = _action_components(jumanji_env.action_spec, name)  # [n_1, ..., n_k]; k=0: Discrete
        num_actions = math.prod(self._action_shape) if self._action_shape else int(jumanji_env.action_spec.num_values)
        _, timestep = jax.eval_shape(jumanji_env.reset, jax.random.key(0))
        obs_size = sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(timestep.observation))
        mask = getattr(timestep.observation, "action_mask", None)
        self._mask_kind = _mask_kind(None if mask is None else tuple(mask.shape), self._action_shape, num_actions, name)
        super().__init__(name, (obs_size,), spaces.Discrete(num_actions), params, masked=self._mask_kind is not None)

    def _mask(self, observation) -> jax.Array | None:
        """bool[num_actions] legal (flat) actions of `observation`; None for an environment without a mask."""
        if self._mask_kind is None:
            return None
        mask = jnp.asarray(observation.action_mask, bool)
        if self._mask_kind == "flat":
            return mask.reshape(-1)
        joint = mask[0, : self._action_shape[0]]
        for i, n in enumerate(self._action_shape[1:], start=1):
            joint = (joint[..., None] & mask[i, :n]).reshape(-1)
        return joint

    def _action(self, action: jax.Array):
        """The flat action index as Jumanji's action (an int32 scalar, or the unravelled components)."""
        action = jnp.asarray(action, jnp.int32)
        if not self._action_shape:
            return action
        return jnp.stack(jnp.unravel_index(action, tuple(self._action_shape))).astype(jnp.int32)

    def suite_reset(self, key: jax.Array, params: SuiteParams) -> Reset:
        jumanji_state, timestep = self.jumanji_env.reset(key)
        return Reset(jumanji_state, flatten_observation(timestep.observation), self._mask(timestep.observation))

    def suite_step(self, key: jax.Array, suite_state, action: jax.Array, params: SuiteParams) -> Transition:
        """Jumanji's step: LAST with discount 0 terminates, with a discount > 0 truncates; the reward is summed over
        agents; info: "discount" (Jumanji's, reduced by max)."""
        jumanji_state, timestep = self.jumanji_env.step(suite_state, self._action(action))
        last = jnp.asarray(timestep.step_type) == LAST
        discount = jnp.max(jnp.asarray(timestep.discount, jnp.float32))
        return Transition(jumanji_state, flatten_observation(timestep.observation),
                          jnp.sum(jnp.asarray(timestep.reward, jnp.float32)), last & (discount == 0.0),
                          last & (discount > 0.0), {"discount": discount}, self._mask(timestep.observation))


def _mask_kind(shape, action_shape: list[int], num_actions: int, name: str) -> str | None:
    """How the observation's action_mask of `shape` maps to the flat actions: None (no mask), "flat" (one entry per
    flat action, or per joint action in the MultiDiscrete's shape) or "components" (``[k, max n]``, one row each)."""
    if shape is None:
        return None
    if shape == (num_actions,) or (action_shape and shape == tuple(action_shape)):
        return "flat"
    if action_shape and shape == (len(action_shape), max(action_shape)):
        return "components"
    raise ValueError(f"jumanji:{name}: action_mask of shape {shape} does not match the action space "
                     f"({action_shape or num_actions})")


def _action_components(action_spec, name: str) -> list[int]:
    """``[]`` for a DiscreteArray; ``[n_1, ..., n_k]`` for a MultiDiscreteArray small enough to flatten."""
    from jumanji import specs  # the optional extra

    if isinstance(action_spec, specs.DiscreteArray):
        return []
    if isinstance(action_spec, specs.MultiDiscreteArray):
        num_values = [int(n) for n in np.asarray(action_spec.num_values).reshape(-1)]
        if math.prod(num_values) > MAX_FLAT_ACTIONS:
            raise ValueError(f"jumanji:{name} has {math.prod(num_values)} joint actions (MultiDiscrete {num_values}), "
                             f"more than the {MAX_FLAT_ACTIONS} the adapter flattens to one Discrete space")
        return num_values
    raise ValueError(f"jumanji:{name} has action spec {type(action_spec).__name__}; the adapter supports "
                     "DiscreteArray and (small) MultiDiscreteArray")


def make_jumanji_env(name: str, max_steps_in_episode: int | None = None, **kwargs) -> tuple[JumanjiEnv, SuiteParams]:
    """A Jumanji environment adapted to gymnax 1.0's interface, and its default params.

    Args:
      name: a registered Jumanji id (``jumanji.registered_environments()``), e.g. "Knapsack-v1", "Snake-v1".
      max_steps_in_episode: the adapter's time limit (a truncation); None: the environment's ``time_limit``, or 1000.
      **kwargs: passed to ``jumanji.make`` (the environment's constructor, e.g. ``time_limit=`` for Snake).

    Raises:
      ValueError: jumanji is not installed, `name` is not registered (the registered names are listed), or its action
        space is not discrete.
    """
    jumanji = jumanji_check(name)
    return built(lambda: JumanjiEnv(jumanji.make(name, **kwargs), name, max_steps_in_episode))


def jumanji_check(name: str):
    """``jumanji``, once it is installed and `name` is one of its registered environments (else `import_suite`'s
    error)."""
    return import_suite("jumanji", name, "jumanji", lambda jumanji: sorted(jumanji.registered_environments()),
                        "Jumanji")
