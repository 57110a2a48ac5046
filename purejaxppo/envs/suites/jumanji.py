"""Jumanji environments behind gymnax 1.0's interface (the optional extra: ``pip install "purejaxppo[jumanji]"``).

    config = PPOConfig(env_name="jumanji:Knapsack-v1", ...)      # envs.make_base_env calls:
    env, env_params = make_jumanji_env("Knapsack-v1")            # kwargs go to jumanji.make

`make_jumanji_env` wraps the bare environment from ``jumanji.make`` (none of Jumanji's wrappers: no
`AutoResetWrapper`, no `VmapWrapper`) as a `JumanjiGymnaxEnv`:

* ``reset(key, params) -> (obs [obs_dim] float32, JumanjiEnvState)``
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
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import environment, spaces

from purejaxppo.extras import import_extra

DEFAULT_MAX_STEPS = 1000  # the time limit of environments without their own `time_limit`
MAX_FLAT_ACTIONS = 4096  # a MultiDiscrete action space is flattened only up to this many joint actions
LAST = 2  # jumanji.types.StepType.LAST


@struct.dataclass
class JumanjiEnvParams:
    """max_steps_in_episode: the adapter's time limit; reaching it truncates the episode."""

    max_steps_in_episode: int = DEFAULT_MAX_STEPS


@struct.dataclass
class JumanjiEnvState:
    """jumanji_state: Jumanji's state. mask: bool[num_actions] legal actions now. time: [] int32 steps this episode."""

    jumanji_state: Any
    mask: jax.Array
    time: jax.Array


def flatten_observation(observation) -> jax.Array:
    """A Jumanji observation as one float32 vector: its leaves in ``jax.tree.leaves`` order, raveled, concatenated."""
    return jnp.concatenate([jnp.ravel(jnp.asarray(leaf)).astype(jnp.float32) for leaf in jax.tree.leaves(observation)])


class JumanjiGymnaxEnv(environment.Environment):
    """One Jumanji environment with gymnax 1.0's `reset`/`step` (see the module docstring for the semantics)."""

    def __init__(self, jumanji_env, name: str, max_steps_in_episode: int | None = None):
        if max_steps_in_episode is None:
            max_steps_in_episode = int(getattr(jumanji_env, "time_limit", None) or DEFAULT_MAX_STEPS)
        if not isinstance(max_steps_in_episode, int) or isinstance(max_steps_in_episode, bool) \
                or max_steps_in_episode < 1:
            raise ValueError(f"max_steps_in_episode must be an integer >= 1, got {max_steps_in_episode!r}")
        self.jumanji_env = jumanji_env
        self._name = name
        self._max_steps = max_steps_in_episode
        self._action_shape = _action_components(jumanji_env.action_spec, name)  # [n_1, ..., n_k]; k=0: Discrete
        self._num_actions = int(np.prod(self._action_shape)) if self._action_shape else \
            int(jumanji_env.action_spec.num_values)
        _, timestep = jax.eval_shape(jumanji_env.reset, jax.random.key(0))
        self._obs_size = sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(timestep.observation))
        mask = getattr(timestep.observation, "action_mask", None)
        self._mask_kind = self._mask_kind_of(None if mask is None else tuple(mask.shape))
        if self._mask_kind is not None:
            self.action_mask = self._action_mask  # only environments with a mask have the method (envs.py checks)

    def _mask_kind_of(self, shape):
        if shape is None:
            return None
        if shape == (self._num_actions,) or (self._action_shape and shape == tuple(self._action_shape)):
            return "flat"
        if self._action_shape and shape == (len(self._action_shape), max(self._action_shape)):
            return "components"
        raise ValueError(f"jumanji:{self._name}: action_mask of shape {shape} does not match the action space "
                         f"({self._action_shape or self._num_actions})")

    @property
    def name(self) -> str:
        return f"jumanji:{self._name}"

    @property
    def default_params(self) -> JumanjiEnvParams:
        return JumanjiEnvParams(max_steps_in_episode=self._max_steps)

    def _mask(self, observation) -> jax.Array:
        """bool[num_actions] legal (flat) actions of `observation` (all True without a mask)."""
        if self._mask_kind is None:
            return jnp.ones((self._num_actions,), bool)
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

    @partial(jax.jit, static_argnames=("self",))
    def reset(self, key: jax.Array, params: JumanjiEnvParams | None = None) -> tuple[jax.Array, JumanjiEnvState]:
        """A new episode: ``(obs [obs_dim] float32, state)``."""
        jumanji_state, timestep = self.jumanji_env.reset(key)
        state = JumanjiEnvState(jumanji_state, self._mask(timestep.observation), jnp.zeros((), jnp.int32))
        return flatten_observation(timestep.observation), state

    @partial(jax.jit, static_argnames=("self",))
    def step(self, key: jax.Array, state: JumanjiEnvState, action: jax.Array, params: JumanjiEnvParams | None = None):
        """One step with auto-reset; returns ``(obs, state, reward, terminated, truncated, info)``.

        action: [] int (the flat index). reward: [] float32. terminated, truncated: [] bool (never both).
        info: "final_observation" (the pre-reset observation [obs_dim]) and "discount" (Jumanji's, reduced by max).
        """
        params = self.default_params if params is None else params
        next_jumanji, timestep = self.jumanji_env.step(state.jumanji_state, self._action(action))
        time = state.time + 1
        last = jnp.asarray(timestep.step_type) == LAST
        discount = jnp.max(jnp.asarray(timestep.discount, jnp.float32))
        terminated = last & (discount == 0.0)
        truncated = ((last & (discount > 0.0)) | (time >= params.max_steps_in_episode)) & ~terminated
        done = terminated | truncated
        reset_obs, reset_state = self.reset(key, params)
        stepped = JumanjiEnvState(next_jumanji, self._mask(timestep.observation), time)
        if jax.tree.structure(reset_state) != jax.tree.structure(stepped):
            raise ValueError(
                f"jumanji:{self._name}: the state after step has a different structure from the state after reset, "
                "so the episode cannot be auto-reset by selection"
            )
        final_obs = flatten_observation(timestep.observation)
        select = lambda a, b: jnp.where(done, a, jnp.asarray(b).astype(jnp.asarray(a).dtype))  # noqa: E731
        new_state = jax.tree.map(select, reset_state, stepped)
        reward = jnp.sum(jnp.asarray(timestep.reward, jnp.float32))
        info = {"final_observation": final_obs, "discount": discount}
        return select(reset_obs, final_obs), new_state, reward, terminated, truncated, info

    def _action_mask(self, state: JumanjiEnvState, params: JumanjiEnvParams | None = None) -> jax.Array:
        """bool[num_actions]: the actions legal in `state` (Jumanji's ``observation.action_mask``, flattened)."""
        return state.mask

    def action_space(self, params: JumanjiEnvParams | None = None) -> spaces.Discrete:
        return spaces.Discrete(self._num_actions)

    def observation_space(self, params: JumanjiEnvParams | None = None) -> spaces.Box:
        return spaces.Box(-jnp.inf, jnp.inf, (self._obs_size,), jnp.float32)

    @property
    def num_actions(self) -> int:
        return self._num_actions


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


def make_jumanji_env(name: str, max_steps_in_episode: int | None = None, **kwargs) -> tuple[JumanjiGymnaxEnv,
                                                                                           JumanjiEnvParams]:
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
    # Concrete arrays even when called inside a trace (`evaluate` under `jax.jit` builds its environment there).
    with jax.ensure_compile_time_eval():
        env = JumanjiGymnaxEnv(jumanji.make(name, **kwargs), name, max_steps_in_episode)
    return env, env.default_params


def jumanji_check(name: str):
    """``jumanji``, after checking that it is installed and that `name` is one of its registered environments.

    Raises:
      ValueError: jumanji is not installed, or `name` is not registered (the registered names are listed).
    """
    jumanji = import_extra("jumanji", f"jumanji:{name}", "jumanji")
    registered = sorted(jumanji.registered_environments())
    if name not in registered:
        raise ValueError(f"'{name}' is not a registered Jumanji environment; registered: {', '.join(registered)}")
    return jumanji
