"""Environment names: gymnax's ids and the suites reached through an ``env_name`` prefix (`SUITES`), the checks of a
name and of its env_kwargs' keys (one-line errors naming the field and what is allowed).
"""

from __future__ import annotations

import difflib
import functools
import importlib.util
import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

import gymnax

from purejaxppo.envs.pools import envpool_check, gymnasium_check, make_envpool_env, make_gymnasium_env
from purejaxppo.envs.suites.brax import brax_check, make_brax_env
from purejaxppo.envs.suites.craftax import craftax_check, make_craftax_env
from purejaxppo.envs.suites.jumanji import jumanji_check, make_jumanji_env
from purejaxppo.envs.suites.navix import make_navix_env, navix_check
from purejaxppo.envs.suites.playground import make_playground_env, playground_check

BRAX_PREFIX = "brax:"


class Suite(NamedTuple):
    """An environment suite reached through an ``env_name`` prefix (``"brax:hopper"``), each an optional extra.

    check(name): raise a ValueError when the suite is not installed or has no environment `name` (one line naming
      the extra to install, or the suite's names).
    make(name, **env_kwargs) -> (env, env_params): the environment behind gymnax 1.0's interface (for a JAX suite, a
      `purejaxppo.envs.suites.base.SuiteEnv`).
    module: the top-level module the suite's extra installs (`suite_installed` looks for it without importing it).
    on_host: whether the suite's environments run on the host, batched over all N environments (EnvPool,
      Gymnasium: `purejaxppo.envs.pools`), stepped from inside the jitted program, instead of being vmapped JAX
      functions: make(name, **env_kwargs) then returns the `pools.HostPool` itself, already an `Env`. `make_env` is
      the one place that branches on it.
    core: the module is a dependency of purejaxppo itself (gymnasium comes with gymnax), so the suite has no extra.
    """

    check: Callable[[str], Any]
    make: Callable[..., tuple[Any, Any]]
    module: str
    on_host: bool = False
    core: bool = False


# prefix -> suite (its extra, unless `core`, is the prefix without the colon); an adapter module imports its suite only inside these
# functions
SUITES: dict[str, Suite] = {
    BRAX_PREFIX: Suite(brax_check, make_brax_env, "brax"),
    "craftax:": Suite(craftax_check, make_craftax_env, "craftax"),
    "jumanji:": Suite(jumanji_check, make_jumanji_env, "jumanji"),
    "navix:": Suite(navix_check, make_navix_env, "navix"),
    "playground:": Suite(playground_check, make_playground_env, "mujoco_playground"),
    "envpool:": Suite(envpool_check, make_envpool_env, "envpool", on_host=True),
    "gymnasium:": Suite(gymnasium_check, make_gymnasium_env, "gymnasium", on_host=True, core=True),
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
        close = difflib.get_close_matches(f"{prefix.lower()}:", list(SUITES), n=1)
        guess = f" Did you mean '{close[0]}{rest}'?" if close else ""
        raise ValueError(f"PPOConfig.env_name {env_name!r}: {prefix!r} is not a known suite.{guess} "
                         f"The suites are {suites}, and plain gymnax ids such as 'CartPole-v1' ({listed}).")
    by_lower = {name.lower(): name for name in names}
    close = difflib.get_close_matches(env_name.strip().lower(), list(by_lower), n=1)
    guess = f" Did you mean {by_lower[close[0]]!r}?" if close else ""
    raise ValueError(
        f"PPOConfig.env_name {env_name!r} is not a registered gymnax environment.{guess} "
        f"Registered: {', '.join(names)} (or {suites} with that suite's extra; {listed})."
    )


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
