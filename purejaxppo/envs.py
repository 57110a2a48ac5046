"""Environments: creation from a name, and the wrapper stack every environment is run through.

`make_env(env_name, env_kwargs)` (or `make_env(env=my_env)`) returns an `Env`: the user's or gymnax's environment
wrapped as

    EpisodeStatistics( ClipAction( ObservationToArray( base ) ) )        (ClipAction only for Box action spaces)

together with its params and its `EnvSpec`, and the vectorised calls the pipeline makes (`Env.reset`, `Env.step`,
`Env.action_mask`, one environment per key). All wrappers keep gymnax 1.0's interface:
``reset(key, params) -> (obs, state)`` and ``step(key, state, action, params) -> (obs, state, reward, terminated,
truncated, info)``, with auto-reset inside `step`. On the step where ``terminated or truncated``, `reward` is the
episode's last reward, `obs` already belongs to the next episode, and ``info["final_observation"]`` is the pre-reset
observation (needed to bootstrap a truncation).

Action masks: an environment may define ``action_mask(state, params) -> bool[num_actions]``; the wrappers pass it
through (`action_mask(env, state, params)` below), so the mask always describes the state the agent is about to act in.
Observations keep their natural shape (a policy's torso flattens what it needs), so nothing here depends on the policy.
Observation and reward *normalisation* are not wrappers: their statistics live in the training state
(`purejaxppo.normalize`), so evaluation and checkpoints keep them.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import importlib.util
import inspect
from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import gymnax
import numpy as np
from flax import struct
from gymnax.environments import spaces

from purejaxppo.brax_env import brax_envs_module, make_brax_env
from purejaxppo.craftax_env import craftax_check, make_craftax_env
from purejaxppo.jumanji_env import jumanji_check, make_jumanji_env
from purejaxppo.navix_env import make_navix_env, navix_check
from purejaxppo.playground_env import make_playground_env, playground_check

BRAX_PREFIX = "brax:"


class Suite(NamedTuple):
    """An environment suite reached through an ``env_name`` prefix (``"brax:hopper"``), each an optional extra.

    check(name): raise a ValueError when the suite is not installed or has no environment `name` (one line naming
      the extra to install, or the suite's names).
    make(name, **env_kwargs) -> (env, env_params): the environment behind gymnax 1.0's interface.
    module: the top-level module the suite's extra installs (`suite_installed` looks for it without importing it).
    """

    check: Callable[[str], Any]
    make: Callable[..., tuple[Any, Any]]
    module: str


# prefix -> suite (its extra is the prefix without the colon); an adapter module imports its suite only inside these
# functions
SUITES: dict[str, Suite] = {
    BRAX_PREFIX: Suite(brax_envs_module, make_brax_env, "brax"),
    "craftax:": Suite(craftax_check, make_craftax_env, "craftax"),
    "jumanji:": Suite(jumanji_check, make_jumanji_env, "jumanji"),
    "navix:": Suite(navix_check, make_navix_env, "navix"),
    "playground:": Suite(playground_check, make_playground_env, "mujoco_playground"),
}


def suite_installed(prefix: str) -> bool:
    """Whether the module of the suite `prefix` (a key of `SUITES`) can be imported; found, not imported."""
    try:
        return importlib.util.find_spec(SUITES[prefix].module) is not None
    except (ImportError, ValueError):
        return False


def suite_of(env_name: str) -> tuple[str, Suite] | tuple[None, None]:
    """``(name without its prefix, suite)`` for a prefixed env_name, else ``(None, None)`` (a gymnax id)."""
    for prefix, suite in SUITES.items():
        if env_name.startswith(prefix):
            return env_name[len(prefix):], suite
    return None, None
# Registered in gymnax but unusable offline: it downloads MNIST on construction.
NEEDS_NETWORK = ("MNISTBandit-bsuite",)


def registered_env_names() -> list[str]:
    """Every gymnax environment id (gymnax.registered_envs), in registration order."""
    return list(gymnax.registered_envs)


# Prefixes of suites that are planned but have no adapter yet: refused as unknown, saying so.
PLANNED_SUITES = ("envpool:", "gymnasium:")


def check_env_name(env_name: str) -> None:
    """Raise a ValueError (one line, pointing to ``purejaxppo list-envs``) unless `env_name` is a registered gymnax id
    or has a suite's prefix: an empty name, an unknown suite (``"foo:Bar"``, the suites listed) and an unknown id (the
    registered ids listed, with the closest one, case-insensitively, as "did you mean").

    A prefixed name is only checked for its prefix here; its suite's ``check`` checks the rest when the environment is
    built."""
    if suite_of(env_name)[1] is not None:
        return
    names = registered_env_names()
    if env_name in names:
        return
    listed = "`purejaxppo list-envs` lists them"
    suites = ", ".join(f"'{p}<name>'" for p in SUITES)
    if not env_name.strip():
        raise ValueError(f"PPOConfig.env_name is empty: give a gymnax id such as 'CartPole-v1' or one of {suites} "
                         f"({listed})")
    if ":" in env_name:
        prefix, _, rest = env_name.partition(":")
        planned = " (its environments are not available yet)" if f"{prefix.lower()}:" in PLANNED_SUITES else ""
        close = difflib.get_close_matches(f"{prefix.lower()}:", list(SUITES), n=1)
        guess = f" Did you mean '{close[0]}{rest}'?" if close else ""
        raise ValueError(f"PPOConfig.env_name {env_name!r}: {prefix!r} is not a known suite{planned}.{guess} "
                         f"The suites are {suites}, and plain gymnax ids such as 'CartPole-v1' ({listed}).")
    by_lower = {name.lower(): name for name in names}
    close = difflib.get_close_matches(env_name.strip().lower(), list(by_lower), n=1)
    guess = f" Did you mean {by_lower[close[0]]!r}?" if close else ""
    raise ValueError(
        f"PPOConfig.env_name {env_name!r} is not a registered gymnax environment.{guess} "
        f"Registered: {', '.join(names)} (or {suites} with that suite's extra; {listed})."
    )


# ------------------------------------------------------------------------------------------------------ env_kwargs
@functools.lru_cache(maxsize=None)
def env_kwarg_names(env_name: str) -> tuple[str, ...] | None:
    """The keyword arguments the constructor of `env_name` accepts, or None when any are (or they cannot be known).

    A gymnax id is looked up in gymnax's registry and its factory (the environment class) inspected, so nothing is
    built; should that private registry be gone, the default environment is built once (cached per name). Brax
    environments (``brax:<name>``) are not inspected: their classes are only reachable by importing brax, and their
    constructors take ``**kwargs`` anyway, so a bad key surfaces when the environment is built (see `make_env`).
    """
    if suite_of(env_name)[1] is not None:
        return None
    factory = getattr(getattr(gymnax, "registration", None), "_registry", {}).get(env_name)
    if factory is None:
        if env_name in NEEDS_NETWORK or env_name not in registered_env_names():
            return None
        factory = type(gymnax.make(env_name)[0])
    return _keyword_names(factory)


def _keyword_names(factory) -> tuple[str, ...] | None:
    """Names `factory` takes as keywords (a class: its ``__init__``'s); None if it takes ``**kwargs`` or is opaque."""
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    keyword_kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return tuple(p.name for p in parameters if p.kind in keyword_kinds)


def check_env_kwargs(env_name: str, env_kwargs: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> None:
    """Raise a ValueError naming the keys of `env_kwargs` that the constructor of `env_name` does not accept.

    `env_kwargs` is a mapping or a sequence of ``(key, value)`` pairs (as `PPOConfig` stores it). Only the keys are
    checked here; their values are tried when the environment is built (`make_env`).
    """
    keys = [str(key) for key in dict(env_kwargs)]
    if not keys:
        return
    allowed = env_kwarg_names(env_name)
    if allowed is None:
        return
    unknown = sorted(set(keys) - set(allowed))
    if unknown:
        takes = f"it takes {list(allowed)}" if allowed else "it takes none"
        raise ValueError(f"PPOConfig.env_kwargs has unknown key(s) {unknown} for {env_name}; {takes}")


def short_error(error: BaseException, limit: int = 200) -> str:
    """``"Type: first line of the message"``, cut to about `limit` characters: an error of a library in one line."""
    lines = [line for line in str(error).splitlines() if line.strip()]
    text = lines[0].strip() if lines else ""
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


@contextlib.contextmanager
def _blame_env_kwargs(env_name: str, env_kwargs: Mapping[str, Any], stage: str) -> Iterator[None]:
    """Turn any failure inside the block into a ValueError naming `env_kwargs`, when there are any.

    Without env_kwargs the environment is a registered default (or the user's own object), so its errors surface
    unchanged; with them, a failure while building or first stepping it is most likely theirs.
    """
    if not env_kwargs:
        yield
        return
    try:
        yield
    except Exception as error:
        # check_step_api wraps the environment's own error in a ValueError: report the original.
        cause = error.__cause__ if isinstance(error, ValueError) and error.__cause__ is not None else error
        raise ValueError(
            f"PPOConfig.env_kwargs {dict(env_kwargs)!r} (key(s) {sorted(env_kwargs)}) do not give a working "
            f"{env_name}: {stage} failed with {short_error(cause)}"
        ) from error


class EnvSpec(NamedTuple):
    """What the network and the rollout need to know about an environment (all static Python values)."""

    obs_shape: tuple[int, ...]
    discrete: bool
    num_actions: int  # discrete: number of actions; continuous: action dimension
    action_low: Any  # continuous only: np.ndarray [action_dim]
    action_high: Any
    has_action_mask: bool
    max_steps_in_episode: int


# --------------------------------------------------------------------------------------------------------- wrappers
class Wrapper:
    """Base wrapper: forwards attributes to the wrapped environment (as gymnax's GymnaxWrapper does)."""

    def __init__(self, env):
        self._env = env

    def __getattr__(self, name):
        return getattr(self._env, name)

    @property
    def unwrapped(self):
        return getattr(self._env, "unwrapped", self._env)

    def action_mask(self, state, params):
        return action_mask(self._env, state, params)


class ObservationToArray(Wrapper):
    """Observations as float32 arrays of their natural shape: Discrete observations become one-hot, others are cast."""

    def __init__(self, env, params):
        super().__init__(env)
        space = env.observation_space(params)
        self._one_hot = int(space.n) if isinstance(space, spaces.Discrete) else 0

    def _convert(self, obs):
        return jax.nn.one_hot(obs, self._one_hot) if self._one_hot else jnp.asarray(obs, jnp.float32)

    @partial(jax.jit, static_argnums=0)
    def reset(self, key, params=None):
        obs, state = self._env.reset(key, params)
        return self._convert(obs), state

    @partial(jax.jit, static_argnums=0)
    def step(self, key, state, action, params=None):
        obs, state, reward, terminated, truncated, info = self._env.step(key, state, action, params)
        info = {**info, "final_observation": self._convert(info["final_observation"])}
        return self._convert(obs), state, reward, terminated, truncated, info


class ClipAction(Wrapper):
    """Clip continuous actions into the Box bounds before the environment sees them.

    The agent keeps the unclipped sample for its log-probability; only the environment gets the clipped action.
    """

    def __init__(self, env, low, high):
        super().__init__(env)
        self._low = np.asarray(low, np.float32)
        self._high = np.asarray(high, np.float32)

    @partial(jax.jit, static_argnums=0)
    def step(self, key, state, action, params=None):
        return self._env.step(key, state, jnp.clip(action, self._low, self._high), params)


@struct.dataclass
class EpisodeStatisticsState:
    env_state: Any
    episode_return: jax.Array  # [] running return of the current episode
    episode_length: jax.Array  # [] running length of the current episode


class EpisodeStatistics(Wrapper):
    """Track each episode's return and length across auto-reset.

    On every step, ``info["episode_return"]`` and ``info["episode_length"]`` hold the running totals *including* this
    step's reward. On the step where ``terminated or truncated`` they are the finished episode's final totals (so the
    terminal reward is counted), and the running totals restart at 0 for the episode that `obs` already belongs to.
    """

    @partial(jax.jit, static_argnums=0)
    def reset(self, key, params=None):
        obs, env_state = self._env.reset(key, params)
        return obs, EpisodeStatisticsState(env_state, jnp.zeros((), jnp.float32), jnp.zeros((), jnp.int32))

    @partial(jax.jit, static_argnums=0)
    def step(self, key, state, action, params=None):
        obs, env_state, reward, terminated, truncated, info = self._env.step(key, state.env_state, action, params)
        reward = jnp.asarray(reward, jnp.float32)
        terminated = jnp.asarray(terminated, bool)
        truncated = jnp.asarray(truncated, bool)
        episode_return = state.episode_return + reward
        episode_length = state.episode_length + 1
        done = terminated | truncated
        info = {**info, "episode_return": episode_return, "episode_length": episode_length}
        state = EpisodeStatisticsState(
            env_state,
            jnp.where(done, 0.0, episode_return),
            jnp.where(done, 0, episode_length),
        )
        return obs, state, reward, terminated, truncated, info

    def action_mask(self, state, params):
        return action_mask(self._env, state.env_state, params)


def action_mask(env, state, params):
    """The environment's legal-action mask, bool[num_actions], through any wrappers; None if it defines none."""
    fn = getattr(env, "action_mask", None)
    if fn is None:
        return None
    return fn(state, params)


def _has_action_mask(env) -> bool:
    while isinstance(env, Wrapper):
        env = env._env
    return callable(getattr(env, "action_mask", None))


def check_step_api(env, env_params, action_space) -> None:
    """Raise a clear ValueError unless `env` follows gymnax 1.0's API (checked on shapes only, nothing runs)."""
    key = jax.random.key(0)
    try:
        _, state = jax.eval_shape(env.reset, key, env_params)
        action = jax.eval_shape(action_space.sample, key)
        out = jax.eval_shape(env.step, key, state, action, env_params)
    except Exception as error:  # report the environment's own failure, not ours
        raise ValueError(f"the environment's reset/step failed when traced: {type(error).__name__}: {error}") from error
    if not (isinstance(out, tuple) and len(out) == 6):
        got = f"a {len(out)}-tuple" if isinstance(out, tuple) else type(out).__name__
        raise ValueError(
            "env.step must return (obs, state, reward, terminated, truncated, info) as in gymnax 1.0, "
            f"got {got} (environments written for gymnax < 1.0 return (obs, state, reward, done, info))"
        )
    if not isinstance(out[5], Mapping) or "final_observation" not in out[5]:
        raise ValueError(
            "env.step's info must hold 'final_observation' (the pre-reset observation, needed to bootstrap "
            "truncated episodes), as gymnax 1.0's Environment.step provides"
        )


# -------------------------------------------------------------------------------------------------- the container
class EnvStep(NamedTuple):
    """The result of stepping N environments (`Env.step`)."""

    obs: jax.Array  # [N, *obs_shape], already the next episode's first observation where done
    env_state: Any
    reward: jax.Array  # [N]
    terminated: jax.Array  # [N]
    truncated: jax.Array  # [N]
    final_obs: jax.Array  # [N, *obs_shape], the pre-reset observation (== obs unless done)
    episode_return: jax.Array  # [N]
    episode_length: jax.Array  # [N]


class Env(NamedTuple):
    """An environment ready for the pipeline: the wrapped environment, its params and its spec (all static).

    The methods run one environment per key (vmapped); environment i's randomness is its own key's.
    """

    wrapped: Any
    params: Any
    spec: EnvSpec

    def reset(self, keys: jax.Array) -> tuple[jax.Array, Any]:
        """Reset one environment per key: keys [N] -> ``(obs [N, *obs_shape], state [N])``."""
        return jax.vmap(self.wrapped.reset, in_axes=(0, None))(keys, self.params)

    def step(self, keys: jax.Array, state, action: jax.Array) -> EnvStep:
        """Step N environments (auto-resetting those that finish): keys [N], state [N], action [N] or [N, A]."""
        obs, state, reward, terminated, truncated, info = jax.vmap(self.wrapped.step, in_axes=(0, 0, 0, None))(
            keys, state, action, self.params
        )
        return EnvStep(
            obs, state, reward, terminated, truncated, info["final_observation"],
            info["episode_return"], info["episode_length"],
        )

    def action_mask(self, state) -> jax.Array | None:
        """``bool[N, A]`` legal actions in each environment's current state, or None when the environment has none."""
        if not self.spec.has_action_mask:
            return None
        return jax.vmap(action_mask, in_axes=(None, 0, None))(self.wrapped, state, self.params).astype(bool)


# ------------------------------------------------------------------------------------------------------- factories
def check_buildable(env_name: str) -> None:
    """Raise a ValueError if `env_name` cannot be built whatever its env_kwargs: an unknown name, an environment that
    needs the network, brax not installed."""
    check_env_name(env_name)
    name, suite = suite_of(env_name)
    if suite is not None:
        suite.check(name)
    elif env_name in NEEDS_NETWORK:
        raise ValueError(f"{env_name} downloads its data set when built and cannot be used offline")


def make_base_env(env_name: str, env_kwargs: Mapping[str, Any] | None = None) -> tuple[Any, Any]:
    """The unwrapped environment `env_name` names, built with `env_kwargs`, and its default params."""
    kwargs = dict(env_kwargs or {})
    check_buildable(env_name)
    name, suite = suite_of(env_name)
    if suite is not None:
        return suite.make(name, **kwargs)
    return gymnax.make(env_name, **kwargs)


def make_env(env_name: str = "", env_kwargs: Mapping[str, Any] | None = None, env=None, env_params=None) -> Env:
    """Wrap `env` (or build the one `env_name` names) and describe it.

    Args:
      env_name, env_kwargs: a registered id (gymnax, or ``"brax:<name>"``) and its constructor's keyword arguments;
        ignored when `env` is given.
      env: any environment with gymnax 1.0's API, or None to build `env_name`.
      env_params: its params; None means the environment's defaults.

    Returns:
      An `Env`.

    Raises:
      ValueError: an unknown name or env_kwargs key; with env_kwargs, any failure to build the environment or to trace
        its first reset and step (one line naming env_kwargs and the environment's own error).
    """
    kwargs: dict[str, Any] = {}
    if env is None:
        kwargs = dict(env_kwargs or {})
        check_buildable(env_name)
        check_env_kwargs(env_name, kwargs)
        with _blame_env_kwargs(env_name, kwargs, "building it"):
            env, default_params = make_base_env(env_name, kwargs)
        env_params = default_params if env_params is None else env_params
    elif env_params is None:
        env_params = env.default_params
    with _blame_env_kwargs(env_name, kwargs, "its first reset and step"):
        wrapped, spec = _wrap_and_describe(env, env_params, trial_step=bool(kwargs))
    return Env(wrapped, env_params, spec)


def check_env_config(env_name: str, env_kwargs: Mapping[str, Any] | None = None) -> EnvSpec:
    """Build `env_name` with `env_kwargs` and trace its first reset and step (abstractly); return its `EnvSpec`.

    For the command line, before it creates a run directory: a bad name, an unknown key or a value the environment
    cannot work with raises the same one-line ValueError as `make_env`.
    """
    return make_env(env_name, env_kwargs).spec


def _wrap_and_describe(env, env_params, trial_step: bool) -> tuple[Any, EnvSpec]:
    """The wrapper stack around `env` and its `EnvSpec`, from abstract traces of reset (and of one step when
    `trial_step`); nothing runs."""
    action_space = env.action_space(env_params)
    if isinstance(action_space, spaces.Discrete):
        discrete, num_actions, low, high = True, int(action_space.n), None, None
    elif isinstance(action_space, spaces.Box):
        shape = tuple(action_space.shape)
        if len(shape) != 1:
            raise ValueError(f"continuous actions must be a 1-d Box, got shape {shape}")
        discrete, num_actions = False, shape[0]
        low = np.broadcast_to(np.asarray(action_space.low, np.float32), shape)
        high = np.broadcast_to(np.asarray(action_space.high, np.float32), shape)
    else:
        raise ValueError(f"unsupported action space {type(action_space).__name__}: use Discrete or Box")
    check_step_api(env, env_params, action_space)
    has_mask = _has_action_mask(env)
    wrapped = ObservationToArray(env, env_params)
    if not discrete:
        wrapped = ClipAction(wrapped, low, high)
    wrapped = EpisodeStatistics(wrapped)
    key = jax.random.key(0)
    obs, state = jax.eval_shape(wrapped.reset, key, env_params)
    if trial_step:
        jax.eval_shape(wrapped.step, key, state, jax.eval_shape(action_space.sample, key), env_params)
    if 0 in obs.shape:
        raise ValueError(f"the environment's observations have shape {tuple(obs.shape)}, with no elements")
    max_steps = int(getattr(env_params, "max_steps_in_episode", 1000))
    spec = EnvSpec(tuple(obs.shape), discrete, num_actions, low, high, has_mask, max_steps)
    return wrapped, spec
