"""Gymnasium environments as a host pool (``env_name="gymnasium:<id>"``; gymnasium is always installed, gymnax needs
it), or any Gymnasium environment of your own through `GymnasiumPool`.

    PPOConfig(env_name="gymnasium:Pendulum-v1")
    PPOConfig(env_name="gymnasium:my_package.envs:MyEnv-v0")            # gymnasium's "module:id" imports the module
    make_train(config, env=GymnasiumPool(make_my_env))                  # a factory: () -> gymnasium.Env
    make_train(config, env=GymnasiumPool("CartPole-v1", vectorization="async", max_episode_steps=200))

The environments of a run (``S * N`` for S seeds of N, see `base`) run in one ``gymnasium.vector`` env with
``autoreset_mode=SAME_STEP``: the step that ends an episode already returns the next episode's first obs, and the
terminal one is taken from ``info["final_obs"]`` as `final_obs`, exactly gymnax's semantics, so no step is masked.
(Gymnasium 1.3.0's *vector* RecordEpisodeStatistics assumes NEXT_STEP and drops a step of every later episode under
SAME_STEP, fixed upstream in Gymnasium PR #1624: the episode statistics here are the pool's own, `base.advance`.)

env_kwargs: ``vectorization``, ``"sync"`` (default: SyncVectorEnv, in this process) or ``"async"`` (AsyncVectorEnv,
one process per environment, started with "spawn" since fork() in a threaded JAX process can hang; its environments
must be picklable: a registered id or a module-level factory; a script needs the usual ``if __name__ ==
"__main__":`` guard, since each spawned process imports it). Every other key goes to ``gymnasium.make`` (e.g.
``max_episode_steps``).

Seeds: ``reset(seed=[...])`` of the vector env with seed s's environment i seeded ``seed_s + i`` (`base`), which
reseeds every environment fully, so the same key gives the same bits call after call without rebuilding anything.

Errors, each one line naming the id: an unknown id (gymnasium's NameNotFound / VersionNotFound), a constructor that
fails, Dict/Tuple/MultiDiscrete spaces (naming the space), and an environment raising mid-run (`base.host_errors`:
``HostEnvError: gymnasium env 'X' raised in step (host step 7): RuntimeError: ...``).
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from typing import Any

import gymnasium
import numpy as np

from purejaxppo.envs.pools.base import HostPool, HostStep, describe_spaces

PREFIX = "gymnasium:"
VECTORIZATIONS = ("sync", "async")
DEFAULT_MAX_STEPS = 1000  # evaluation's step limit for an environment without a TimeLimit


def gymnasium_check(env_id: str) -> None:
    """Raise a one-line ValueError unless `env_id` is a registered Gymnasium id (a "module:id" is imported first)."""
    _spec(env_id)


def _spec(env_id: str):
    try:
        if ":" in env_id:  # gymnasium's own convention: import the module that registers the id
            module, _, env_id = env_id.partition(":")
            importlib.import_module(module)
        return gymnasium.spec(env_id)
    except (gymnasium.error.Error, ImportError) as error:
        raise ValueError(f"gymnasium env {env_id!r} cannot be made: {type(error).__name__}: "
                         f"{str(error).splitlines()[0] if str(error) else ''}") from None


def make_gymnasium_env(env_id: str, **env_kwargs: Any) -> GymnasiumPool:
    """The host pool ``gymnasium:<id>`` names (the `registry.Suite` factory)."""
    return GymnasiumPool(env_id, **env_kwargs)


class GymnasiumPool(HostPool):
    """Gymnasium environments stepped through ``io_callback`` as one SAME_STEP vector env (module docstring).

    Args:
      env: a registered id (or "module:id"), or a factory ``() -> gymnasium.Env`` (module-level for "async"); not a
        built environment or vector env: the pool builds ``num_seeds x num_envs`` environments itself (a number known
        when the program is traced), SAME_STEP, rebuilt after a failure, and evaluation's own pool.
      vectorization: "sync" or "async".
      **make_kwargs: keyword arguments of ``gymnasium.make`` (with an id; a factory takes none).
    """

    same_step = True

    def __init__(self, env: str | Callable[[], Any], vectorization: str = "sync", **make_kwargs: Any):
        if vectorization not in VECTORIZATIONS:
            raise ValueError(f"PPOConfig.env_kwargs['vectorization'] must be one of {list(VECTORIZATIONS)}, "
                             f"got {vectorization!r}")
        if callable(env):
            if make_kwargs:
                raise ValueError(f"GymnasiumPool: keyword arguments {sorted(make_kwargs)} go to gymnasium.make with "
                                 "an id; a factory takes none (bind them in the factory)")
            self.name, self._factory, max_steps = f"gymnasium env {getattr(env, '__name__', env)!r}", env, None
        elif isinstance(env, str):
            spec = _spec(env)
            self.name, max_steps = f"gymnasium env {env!r}", spec.max_episode_steps
            self._factory = functools.partial(gymnasium.make, env, **make_kwargs)  # picklable, for "spawn"
        elif isinstance(env, gymnasium.vector.VectorEnv):
            raise ValueError(f"GymnasiumPool takes a factory () -> gymnasium.Env, not a built {type(env).__name__}: "
                             "it builds its own vector env (num_seeds x num_envs environments with SAME_STEP "
                             "autoreset, rebuilt after a failure, and evaluation's own); pass the factory of one "
                             "environment, e.g. vector_env.env_fns[0]")
        elif isinstance(env, gymnasium.Env):
            raise ValueError(f"GymnasiumPool takes a factory () -> gymnasium.Env, not an environment "
                             f"({type(env.unwrapped).__name__}): it builds num_seeds x num_envs of them (and "
                             "evaluation's own) and rebuilds them after a failure; pass e.g. lambda: MyEnv(...) "
                             "(a module-level function for vectorization 'async')")
        else:
            raise ValueError(f"GymnasiumPool needs a Gymnasium id or a factory () -> gymnasium.Env, got "
                             f"{type(env).__name__}")
        self.env, self.vectorization, self.make_kwargs = env, vectorization, dict(make_kwargs)
        try:
            probe = self._factory()
        except Exception as error:
            raise ValueError(f"{self.name} cannot be made: {type(error).__name__}: "
                             f"{str(error).splitlines()[0] if str(error) else ''}") from None
        max_steps = make_kwargs.get("max_episode_steps", max_steps) or getattr(probe.spec, "max_episode_steps", None)
        try:
            self.spec, self.observations = describe_spaces(self.name, probe.observation_space, probe.action_space,
                                                           max_steps or DEFAULT_MAX_STEPS, next_step_reset=False)
        finally:
            probe.close()
        self._envs = None
        super().__init__()

    # ---------------------------------------------------------------------------------------------------- host side
    def _vector_env(self, num_envs: int):
        if self._envs is not None and self._envs.num_envs == num_envs:
            return self._envs
        self.close()
        mode = gymnasium.vector.AutoresetMode.SAME_STEP
        fns = [self._factory] * num_envs
        if self.vectorization == "sync":
            self._envs = gymnasium.vector.SyncVectorEnv(fns, autoreset_mode=mode)
        else:
            self._envs = gymnasium.vector.AsyncVectorEnv(fns, autoreset_mode=mode, context="spawn")
        return self._envs

    def _host_reset(self, seeds: list[int], num_envs: int) -> np.ndarray:
        envs = self._vector_env(len(seeds) * num_envs)
        return envs.reset(seed=[s + i for s in seeds for i in range(num_envs)])[0]

    def _host_step(self, action: np.ndarray) -> HostStep:
        if self._envs is None:
            raise RuntimeError("the vector env was not reset")
        if not self.spec.discrete:
            action = action.astype(self._envs.single_action_space.dtype, copy=False)
        obs, reward, terminated, truncated, info = self._envs.step(action)
        final_obs = obs
        ended = np.asarray(info.get("_final_obs", np.zeros(len(obs), bool)))
        if ended.any():
            final_obs = np.array(obs, copy=True)
            for i in np.flatnonzero(ended):
                final_obs[i] = info["final_obs"][i]
        return HostStep(obs, reward, terminated, truncated, final_obs)

    def _broken(self) -> None:
        self.close()  # a vector env's state is undefined after its environment raised

    def _evaluation_pool(self) -> HostPool:
        return GymnasiumPool(self.env, "sync", **self.make_kwargs)

    def close(self) -> None:
        if self._envs is not None:
            self._envs.close()
            self._envs = None
