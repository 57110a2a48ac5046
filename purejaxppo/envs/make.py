"""`make_env`: build the environment an ``env_name`` names (or take the user's own), wrap it (`wrappers`) and
describe it (`EnvSpec`), checking on shapes alone that it follows gymnax 1.0's API.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

import gymnax
import jax

from purejaxppo.envs.pools import HostPool
from purejaxppo.envs.registry import NEEDS_NETWORK, check_env_kwargs, check_env_name, suite_of
from purejaxppo.envs.spec import Env, EnvSpec
from purejaxppo.envs.suites.base import action_facts
from purejaxppo.envs.wrappers import ClipAction, EpisodeStatistics, ObservationToArray, has_action_mask


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
    """The unwrapped environment `env_name` names, built with `env_kwargs`, and its default params (for a host suite,
    ``"envpool:..."`` or ``"gymnasium:..."``, the `pools.HostPool` alone, already an `Env`)."""
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
      env: any environment with gymnax 1.0's API, a host pool (`pools.HostPool`, e.g. `GymnasiumPool`), or None to
        build `env_name`.
      env_params: its params; None means the environment's defaults.

    Returns:
      An `Env` (for a host suite, ``"envpool:<task>"`` or ``"gymnasium:<id>"``, or a given pool: the pool itself).

    Raises:
      ValueError: an unknown name or env_kwargs key; with env_kwargs, any failure to build the environment or to trace
        its first reset and step (one line naming env_kwargs and the environment's own error).
    """
    kwargs: dict[str, Any] = {}
    if isinstance(env, HostPool) or (env is None and getattr(suite_of(env_name)[1], "on_host", False)):
        return env if env is not None else make_base_env(env_name, env_kwargs)  # a host pool is its own Env
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
    discrete, num_actions, low, high = action_facts(action_space)
    check_step_api(env, env_params, action_space)
    has_mask = has_action_mask(env)
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
