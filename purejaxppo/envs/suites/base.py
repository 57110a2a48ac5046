"""The base of every suite adapter: `SuiteEnv` owns gymnax 1.0's episode handling, an adapter only its suite.

A suite's adapter subclasses `SuiteEnv`, declares its facts once (name, observation shape, action space, default
params) and writes two hooks in its suite's own terms:

    class NavixEnv(SuiteEnv):
        prefix = "navix"                                    # env_name "navix:<name>"; the extra is named the same

        def suite_reset(self, key, params) -> Reset:        # Reset(state, obs, mask=None)
            timestep = self.navix_env.reset(key)
            return Reset(timestep, timestep.observation)

        def suite_step(self, key, suite_state, action, params) -> Transition:
            timestep = self.navix_env._step(suite_state, action)
            return Transition(timestep, timestep.observation, timestep.reward, timestep.step_type == TERMINATION)

`SuiteEnv.reset` and `SuiteEnv.step` (gymnax 1.0's interface, one environment: batch with `jax.vmap`) do the rest,
the same for every suite:

* the state is a `SuiteState`: the suite's own state, the steps taken in the episode (``time``, int32 []) and, for an
  adapter with an action mask (``masked=True``), the legal actions now (bool [num_actions]);
* ``terminated`` is the suite's; ``truncated = (suite_truncated | time >= params.max_steps_in_episode) & ~terminated``
  (termination wins when both happen, as Brax's `EpisodeWrapper` decides);
* auto-reset by selection: the reset is computed every step (from the key `split_step_key` gives: the step's own key
  unless an adapter says otherwise) and selected leaf by leaf where the episode ended, so obs and state already belong
  to the next episode on the ending step, and ``info["final_observation"]`` is the pre-reset observation;
* observations are float32 of the declared shape (reshaped, so an adapter may hand over its suite's unflattened
  view), reward float32 [], flags bool [].

The rest of this module is what adapters share around that: `import_suite` (the "needs the X extra" and "not a X
environment" checks), `built`, `check_time_limit`, `python_numbers_as_float32`, and the space conversion: `gymnax_space`,
which also takes gymnasium-style spaces (duck-typed) for suites whose spaces are not gymnax's, and `action_facts`,
what `EnvSpec` records of an action space (`make_env` and the host pools read every action space through it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from functools import partial
from types import ModuleType
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import environment, spaces

from purejaxppo.extras import import_extra


@struct.dataclass
class SuiteParams:
    """max_steps_in_episode: the time limit; reaching it truncates the episode."""

    max_steps_in_episode: int = 1000


@struct.dataclass
class SuiteState:
    """suite_state: the suite's own state of the current episode. time: [] int32, steps taken in the episode.
    mask: bool [num_actions], the actions legal now (None for an adapter without an action mask)."""

    suite_state: Any
    time: jax.Array
    mask: jax.Array | None = None


class Reset(NamedTuple):
    """What an adapter's `suite_reset` reports: the suite's state, its observation (any shape with as many elements
    as the declared obs shape, any number dtype) and, for a masked adapter, the legal actions (bool [num_actions])."""

    state: Any
    obs: Any
    mask: Any = None


class Transition(NamedTuple):
    """What an adapter's `suite_step` reports, before the time limit and the auto-reset: the suite's next state, its
    observation, reward ([] number), terminated ([] bool), the suite's own truncation ([] bool; False when it has
    none), extra info entries, and for a masked adapter the legal actions in the next state."""

    state: Any
    obs: Any
    reward: Any
    terminated: Any
    truncated: Any = False
    info: Mapping[str, Any] | None = None
    mask: Any = None


class SuiteEnv(environment.Environment):
    """One environment of a suite with gymnax 1.0's `reset`/`step` (see the module docstring for the semantics).

    Subclasses set `prefix` and implement `suite_reset` and `suite_step`; `split_step_key` may be overridden.

    Args:
      name: the suite's name of the environment (without the prefix).
      obs_shape: the observation's shape as the agent sees it, e.g. ``(obs_dim,)``.
      action_space: a Discrete or Box space, gymnax's or any with the same attributes (see `gymnax_space`).
      params: the default params; they must have ``max_steps_in_episode`` (`SuiteParams` for most suites).
      obs_low, obs_high: the observation space's bounds.
      masked: whether the suite reports an action mask (then the environment has ``action_mask(state, params)``).
    """

    prefix: ClassVar[str] = ""

    def __init__(self, name: str, obs_shape: Iterable[int], action_space: Any, params: Any,
                 obs_low: float = -np.inf, obs_high: float = np.inf, masked: bool = False):
        self._name = name
        self._obs_shape = tuple(int(n) for n in obs_shape)
        self._action_space = gymnax_space(action_space, f"{self.prefix}:{name}'s action space")
        self._obs_space = spaces.Box(obs_low, obs_high, self._obs_shape, jnp.float32)
        self._params = params
        if masked:  # only an environment with a mask has the method (envs.wrappers.has_action_mask looks for it)
            self.action_mask = self._action_mask

    # -- what an adapter writes -----------------------------------------------------------------------------------

    def suite_reset(self, key: jax.Array, params: Any) -> Reset:
        """A new episode of the suite."""
        raise NotImplementedError

    def suite_step(self, key: jax.Array, suite_state: Any, action: jax.Array, params: Any) -> Transition:
        """The suite's transition from `suite_state` on `action`, without any reset or time limit."""
        raise NotImplementedError

    def split_step_key(self, key: jax.Array) -> tuple[jax.Array, jax.Array]:
        """``(key of the transition, key of the reset selected where the episode ends)`` from a step's key: the
        step's key for both (the transitions of most suites draw nothing)."""
        return key, key

    # -- gymnax 1.0's interface -----------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return f"{self.prefix}:{self._name}"

    @property
    def default_params(self) -> Any:
        return self._params

    def action_space(self, params: Any = None) -> spaces.Discrete | spaces.Box:
        return self._action_space

    def observation_space(self, params: Any = None) -> spaces.Box:
        return self._obs_space

    @property
    def num_actions(self) -> int:
        space = self._action_space
        return int(space.n) if isinstance(space, spaces.Discrete) else int(space.shape[0])

    @partial(jax.jit, static_argnames=("self",))
    def reset(self, key: jax.Array, params: Any = None) -> tuple[jax.Array, SuiteState]:
        """A new episode: ``(obs float32 [*obs_shape], state)``."""
        params = self.default_params if params is None else params
        out = self.suite_reset(key, params)
        return self._obs(out.obs), SuiteState(out.state, jnp.zeros((), jnp.int32), _as_mask(out.mask))

    @partial(jax.jit, static_argnames=("self",))
    def step(self, key: jax.Array, state: SuiteState, action: jax.Array, params: Any = None):
        """One step with auto-reset; returns ``(obs, state, reward, terminated, truncated, info)``.

        action: [] int (Discrete) or [action_dim] (Box). obs: float32 [*obs_shape]. reward: [] float32.
        terminated, truncated: [] bool (never both). info: the suite's entries and "final_observation" (the pre-reset
        observation [*obs_shape]).
        """
        params = self.default_params if params is None else params
        step_key, reset_key = self.split_step_key(key)
        out = self.suite_step(step_key, state.suite_state, action, params)
        time = state.time + 1
        terminated = jnp.asarray(out.terminated, bool)
        truncated = (jnp.asarray(out.truncated, bool) | (time >= params.max_steps_in_episode)) & ~terminated
        done = terminated | truncated
        reset_obs, reset_state = self.reset(reset_key, params)
        stepped = SuiteState(out.state, time, _as_mask(out.mask))
        if jax.tree.structure(reset_state) != jax.tree.structure(stepped):
            raise ValueError(
                f"{self.name}: the state after step has a different structure from the state after reset, so the "
                "episode cannot be auto-reset by selection"
            )
        final_obs = self._obs(out.obs)
        select = lambda a, b: jnp.where(done, a, jnp.asarray(b).astype(jnp.asarray(a).dtype))
        info = {**(out.info or {}), "final_observation": final_obs}
        reward = jnp.asarray(out.reward, jnp.float32)
        return select(reset_obs, final_obs), jax.tree.map(select, reset_state, stepped), reward, terminated, \
            truncated, info

    def _action_mask(self, state: SuiteState, params: Any = None) -> jax.Array:
        """bool [num_actions]: the actions legal in `state`."""
        return state.mask

    def _obs(self, obs) -> jax.Array:
        return jnp.asarray(obs, jnp.float32).reshape(self._obs_shape)


def _as_mask(mask):
    return None if mask is None else jnp.asarray(mask, bool)


def gymnax_space(space: Any, what: str = "the action space") -> spaces.Discrete | spaces.Box:
    """`space` as a gymnax `Discrete` or `Box`, duck-typed so that gymnasium's (and craftax's own) spaces do too.

    A space with ``n`` and no shape (or shape ``()``) is Discrete (gymnasium's ``start`` must be 0); one with ``low``,
    ``high`` and ``shape`` is a Box of its dtype (float32 when it has none); a gymnax space is returned as it is.

    Raises:
      ValueError: any other space (MultiDiscrete, MultiBinary, Dict, Tuple, ...), or a Discrete not starting at 0.
    """
    if isinstance(space, (spaces.Discrete, spaces.Box)):
        return space
    if hasattr(space, "n") and tuple(getattr(space, "shape", None) or ()) == ():
        if int(getattr(space, "start", 0)) != 0:
            raise ValueError(f"{what} is Discrete starting at {int(space.start)}; only Discrete starting at 0 is "
                             "supported")
        return spaces.Discrete(int(space.n))
    if all(hasattr(space, field) for field in ("low", "high", "shape")):
        shape = tuple(int(n) for n in space.shape)
        dtype = getattr(space, "dtype", None) or jnp.float32
        return spaces.Box(np.asarray(space.low), np.asarray(space.high), shape, dtype)
    raise ValueError(f"{what} is {type(space).__name__}; supported: Discrete (n) or Box (low, high, shape)")


def action_facts(space: Any, what: str = "the action space") -> tuple[bool, int, np.ndarray | None, np.ndarray | None]:
    """``(discrete, num_actions, low, high)`` of an action space (gymnax's, gymnasium's or alike: `gymnax_space`):
    Discrete n -> ``(True, n, None, None)``; a 1-d Box -> ``(False, dim, low [dim] float32, high [dim] float32)``.

    Raises:
      ValueError: a space `gymnax_space` refuses, or a Box that is not 1-d (one line naming `what`).
    """
    space = gymnax_space(space, what)
    if isinstance(space, spaces.Discrete):
        return True, int(space.n), None, None
    shape = tuple(int(n) for n in space.shape)
    if len(shape) != 1:
        raise ValueError(f"{what}: continuous actions must be a 1-d Box, got shape {shape}")
    low = np.broadcast_to(np.asarray(space.low, np.float32), shape)
    high = np.broadcast_to(np.asarray(space.high, np.float32), shape)
    return False, shape[0], low, high


def import_suite(extra: str, name: str, module: str, registered: Callable[[ModuleType], Iterable[str]],
                 label: str) -> ModuleType:
    """`module` of the suite `extra` (also its env_name prefix), after checking that it is installed and that `name`
    is among the names `registered(module)` lists (an empty list checks nothing).

    Raises:
      ValueError: one line, ``env 'extra:name' needs the extra extra: pip install ...`` or ``'name' is not a label
        environment; registered: ...``.
    """
    imported = import_extra(module, f"{extra}:{name}", extra)
    names = list(registered(imported))
    if names and name not in names:
        raise ValueError(f"'{name}' is not a {label} environment; registered: {', '.join(names)}")
    return imported


def built(factory: Callable[[], SuiteEnv]) -> tuple[SuiteEnv, Any]:
    """``(env, env.default_params)`` for the environment ``factory()`` builds, with concrete arrays even when called
    inside a trace (`evaluate` under `jax.jit` builds its environment there): suites compute constants with jnp, and
    adapters read some of them with NumPy."""
    with jax.ensure_compile_time_eval():
        env = factory()
    return env, env.default_params


def check_time_limit(value: Any, field: str) -> int:
    """`value` if it is an integer >= 1, else a ValueError naming `field` (the adapter's keyword for its limit)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{field} must be an integer >= 1, got {value!r}")
    return value


def python_numbers_as_float32(tree):
    """`tree` with its Python-number leaves as float32 arrays (suites such as Brax keep some metrics as Python
    floats at reset and as arrays after a step; selection needs one structure and dtype)."""
    return jax.tree.map(lambda x: jnp.asarray(x, jnp.float32) if isinstance(x, (int, float)) else x, tree)
