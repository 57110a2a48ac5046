"""EnvPool tasks as a host pool (``env_name="envpool:<task>"``; the optional extra: ``pip install
"purejaxppo[envpool]"``, EnvPool 1.2.5 with MuJoCo and the Atari ROMs bundled).

    PPOConfig(env_name="envpool:Pong-v5", env_kwargs={"episodic_life": True})         # the callback route
    PPOConfig(env_name="envpool:HalfCheetah-v4", env_kwargs={"backend": "xla"})       # EnvPool's XLA calls

Every id of ``envpool.list_all_envs()`` works (CartPole-v1, Pendulum-v1, HalfCheetah-v4, Hopper-v4, Walker2d-v4,
Pong-v5, Breakout-v5, ...); an unknown one is a ValueError at once, with the close matches. EnvPool runs in sync mode
(every step sends all environments' actions and waits for all of them), with its gymnasium API, or, on the xla route
with ``pool_envs``, in asynchronous mode (`EnvPoolAsync`).

env_kwargs:

* ``backend``: ``"callback"`` (default) or ``"xla"``.

  - callback: each reset builds a pool of ``S * N`` environments (S seeds of N) with ``env_seed`` = each seed's
    ``seed + i`` (`base` module docstring: the seeds come from the run key), stepped with EnvPool's NumPy API through
    ``io_callback``. Reproducible: the same key gives the same bits, call after call, and seed s of an S-seed run
    steps exactly what a one-seed run with key s steps.
  - xla: EnvPool's own XLA custom calls (``env.xla()``: no Python per step; 2-5x faster env stepping on CPU). Such a
    call names its pool in a compile-time attribute, so the pool is built when the program is traced and cannot be
    seeded from the run key: its ``S * N`` environments get ``pool_seed + i`` with ``pool_seed`` derived from the
    ``seed`` entry (below) and the pool's size. A compiled program called again continues the pool's random streams;
    `make_train`'s train function therefore traces (and compiles) again on every call after the first, on a fresh
    pool with the same seeds, so that the same key gives the same bits. A program you jit yourself
    (``jax.jit(jax.vmap(train))``) continues the streams instead. Old pools stay alive as long as this object, since
    a compiled program may still call them.
* ``pool_envs`` (xla only, int): asynchronous mode, a pool of that many environments of which each step answers
  num_envs (`EnvPoolAsync`).
* ``seed`` (xla only, int, default 0): the XLA pool's seed; ``pool_seed = SeedSequence([seed, S * N])``'s first
  word mod 2**30 (``SeedSequence([seed, S * N, u])`` for a run resumed at update u, `resume_at`).
* any of the task's EnvPool options (``envpool.make_spec(task).config``: ``max_episode_steps``, ``episodic_life``,
  ``reward_clip``, ``stack_num``, ``frame_skip``, ``img_height``, ``num_threads``, ...), except those this adapter
  sets (`RESERVED`). Unknown keys are a ValueError listing the task's options.

Semantics (`base`): EnvPool resets NEXT_STEP, so the step after a done is masked (``EnvSpec.next_step_reset``);
``terminated`` and ``truncated`` are EnvPool's (``terminated = done & ~trunc``: an episode that terminates on the time
limit's step is reported truncated, a limitation of EnvPool's API); episode returns and lengths are EnvPool's own
(the summed rewards and ``elapsed_step`` of the done step). Observations: float64 ones arrive as float32; Atari's
uint8 frames ``[stack, H, W]`` stay uint8 and are transposed to ``[H, W, stack]`` (the CNNs' layout). Discrete actions
go as int32, continuous ones clipped into the action space's bounds and sent in EnvPool's dtype (float64 for MuJoCo).

Float64 (MuJoCo) on the XLA route: ``xla()`` is built, and every send/recv traced, inside ``jax.enable_x64(True)``,
casting at the boundary, so x64 never leaks into the rest of the program (``jax_enable_x64`` stays False). Building
``xla()`` outside that scope makes EnvPool write 8-byte values into 4-byte buffers (memory corruption), so it never is.
"""

from __future__ import annotations

import contextlib
import difflib
from types import ModuleType
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.custom_batching import custom_vmap
from jax.experimental import io_callback

from purejaxppo.envs.pools.base import (
    SEED_LIMIT, TOKEN, HostEnvError, HostPool, HostStep, PoolState, advance, describe_spaces,
)
from purejaxppo.envs.spec import EnvStep
from purejaxppo.extras import import_extra

PREFIX = "envpool:"
BACKENDS = ("callback", "xla")
# EnvPool options this adapter sets itself (pool sizes, seeds, the gymnasium API), refused in env_kwargs.
RESERVED = ("num_envs", "batch_size", "seed", "env_seed", "max_num_players", "gym_reset_return_info", "base_path")


def envpool_module(task: str) -> ModuleType:
    return import_extra("envpool", f"{PREFIX}{task}", "envpool")


def envpool_check(task: str) -> None:
    """Raise a one-line ValueError unless `task` is an EnvPool id (naming the close matches), or envpool is missing."""
    names = envpool_module(task).list_all_envs()
    if task not in names:
        close = difflib.get_close_matches(task, names, n=3, cutoff=0.6)
        guess = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ValueError(f"env '{PREFIX}{task}': EnvPool has no task {task!r}.{guess} "
                         f"(envpool.list_all_envs() lists its {len(names)} tasks)")


def make_envpool_env(task: str, **env_kwargs: Any) -> EnvPoolTask:
    """The host pool ``envpool:<task>`` names, from the env_kwargs above (the `registry.Suite` factory)."""
    backend = env_kwargs.pop("backend", "callback")
    if backend not in BACKENDS:
        raise ValueError(f"PPOConfig.env_kwargs['backend'] must be one of {list(BACKENDS)} for '{PREFIX}{task}', "
                         f"got {backend!r}")
    if "pool_envs" in env_kwargs:
        if backend != "xla":
            raise ValueError(f"PPOConfig.env_kwargs['pool_envs'] (asynchronous mode) needs backend 'xla' for "
                             f"'{PREFIX}{task}', got {backend!r}")
        return EnvPoolAsync(task, **env_kwargs)
    if backend == "xla":
        return EnvPoolXLA(task, **env_kwargs)
    if "seed" in env_kwargs:
        raise ValueError(f"PPOConfig.env_kwargs['seed'] is only for backend 'xla' ('{PREFIX}{task}'): the callback "
                         "route seeds its environments from the run key")
    return EnvPoolTask(task, **env_kwargs)


def needs_x64(pool) -> bool:
    """Whether any of the pool's actions or state arrays is 64-bit (MuJoCo's float64 observations and actions)."""
    specs = list(pool.spec.action_array_spec.values()) + list(pool.spec.state_array_spec.values())
    return any(np.dtype(s.dtype).itemsize == 8 and np.dtype(s.dtype).kind in "fiu" for s in specs)


class EnvPoolTask(HostPool):
    """An EnvPool task stepped through ``io_callback`` (the callback route; see the module docstring).

    Args:
      task: an EnvPool id, e.g. "CartPole-v1", "HalfCheetah-v4", "Pong-v5".
      **options: EnvPool's options of the task (not `RESERVED`).
    """

    same_step = False

    def __init__(self, task: str, **options: Any):
        self.task, self.options = task, dict(options)
        self.name = f"env '{PREFIX}{task}'"
        self._envpool = envpool_module(task)
        envpool_check(task)
        allowed = [k for k in self._envpool.make_spec(task).config._fields if k not in RESERVED]
        unknown = sorted(set(options) - set(allowed))
        if unknown:
            raise ValueError(f"PPOConfig.env_kwargs has unknown key(s) {unknown} for '{PREFIX}{task}'; it takes "
                             f"{['backend', 'seed', *allowed]}")
        try:
            probe = self._make(1, env_seed=[0])
        except Exception as error:
            raise ValueError(f"PPOConfig.env_kwargs {self.options!r} do not give a working '{PREFIX}{task}': "
                             f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}") from None
        self.spec, self.observations = describe_spaces(
            f"{PREFIX}{task}", probe.observation_space, probe.action_space, probe.config["max_episode_steps"],
            next_step_reset=True, channels_first=True)
        self.action_dtype = np.dtype(probe.spec.action_array_spec["action"].dtype)
        self.x64 = needs_x64(probe)
        probe.close()
        self._pool = None
        super().__init__()

    def _make(self, num_envs: int, **seeding):
        return self._envpool.make(self.task, env_type="gymnasium", num_envs=num_envs, batch_size=num_envs,
                                  **seeding, **self.options)

    # ---------------------------------------------------------------------------------------------------- host side
    def _host_reset(self, seeds: list[int], num_envs: int) -> np.ndarray:
        # EnvPool seeds once, when built (reset(seed=) is ignored): a fresh pool for every reset, so the same seeds
        # start the same random streams again
        self.close()
        self._pool = self._make(len(seeds) * num_envs, env_seed=[s + i for s in seeds for i in range(num_envs)])
        return self._pool.reset()[0]

    def _host_step(self, action: np.ndarray) -> HostStep:
        if self._pool is None:
            raise RuntimeError("the pool was not reset")
        obs, reward, terminated, truncated, _ = self._pool.step(action.astype(self.action_dtype, copy=False))
        return HostStep(obs, reward, terminated, truncated, obs)

    def _broken(self) -> None:
        self.close()

    def _evaluation_pool(self) -> HostPool:
        return EnvPoolTask(self.task, **self.options)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None


class _XLAPool:
    """One EnvPool pool and its XLA functions (bound to it at compile time)."""

    def __init__(self, pool, x64: bool, seed: int):
        self.pool, self.used, self.seed = pool, False, seed
        with (jax.enable_x64(True) if x64 else contextlib.nullcontext()):
            handle, self.recv, self.send, _ = pool.xla()
        self.handle = np.asarray(handle)


class EnvPoolXLA(EnvPoolTask):
    """An EnvPool task stepped by EnvPool's own XLA custom calls (the xla route; see the module docstring).

    Args:
      task, **options: as `EnvPoolTask`.
      seed: the pools' integer seed (a pool of B environments gets ``pool_seed(B) + i``).
    """

    def __init__(self, task: str, seed: int = 0, **options: Any):
        if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**63:
            raise ValueError(f"PPOConfig.env_kwargs['seed'] must be a non-negative integer for '{PREFIX}{task}', "
                             f"got {seed!r}")
        self.seed, self._resumed_at = seed, 0
        self._current: dict[int, _XLAPool] = {}  # pool size -> the pool programs traced now step
        self._alive: list[_XLAPool] = []  # every pool built: a compiled program may still call it
        super().__init__(task, **options)
        self.name = f"env '{PREFIX}{task}' (xla backend)"

    def pool_seed(self, batch: int) -> int:
        """EnvPool's `seed` for a pool of `batch` environments (environment i gets ``pool_seed + i``); a run resumed
        at update u > 0 (`resume_at`) adds u to the entropy: ``SeedSequence([seed, batch, u])``."""
        entropy = [self.seed, batch] + ([self._resumed_at] if self._resumed_at else [])
        return int(np.random.SeedSequence(entropy).generate_state(1)[0]) % SEED_LIMIT

    def resume_at(self, update: int) -> None:
        self._resumed_at = int(update)

    def _scope(self):
        return jax.enable_x64(True) if self.x64 else contextlib.nullcontext()

    def _xla_pool(self, batch: int, fresh: bool) -> _XLAPool:
        """The pool of `batch` environments programs traced now use; a reset traced after that pool ran gets a new
        one (same seed), so its program starts the same random streams again."""
        current, seed = self._current.get(batch), self.pool_seed(batch)
        if current is None and not fresh:
            raise ValueError(f"{self.name}: a step of {batch} environments was traced before any reset of that many: "
                             "trace (or run) the program that resets the pool first")
        if current is None or (fresh and (current.used or current.seed != seed)):
            current = _XLAPool(self._make_xla(batch, seed), self.x64, seed)
            self._current[batch] = current
            self._alive.append(current)
        return current

    def _make_xla(self, batch: int, seed: int):
        """The EnvPool pool behind a traced pool of `batch` environments."""
        return self._make(batch, seed=seed)

    def _recv(self, xla_pool: _XLAPool, token):
        """EnvPool's recv, traced inside the x64 scope, cast to 32 bits before leaving it; the environment ids last."""
        with self._scope():
            token, (obs, reward, terminated, truncated, info) = xla_pool.recv(token)
            obs = obs.astype(self.observations.raw.dtype)
            reward = reward.astype(jnp.float32)
            env_id = info["env_id"].astype(jnp.int32)
        return token, obs, reward, terminated, truncated, env_id

    def _xla_reset(self, batch: int, seeds: jax.Array):
        """Reset the pool answering `batch` environments per step: ``(token, obs [batch, ...], env_id [batch])``."""
        xla_pool = self._xla_pool(batch, fresh=True)

        def host(seeds):  # `seeds` only orders the call: this pool's seeds were fixed when it was built
            self._before_reset(xla_pool)
            xla_pool.pool.async_reset()
            xla_pool.used = True
            return xla_pool.handle

        token = io_callback(host, TOKEN, seeds, ordered=False)
        token, obs, *_, env_id = self._recv(xla_pool, token)
        return self._state_token(xla_pool, token), obs, env_id

    def _xla_step(self, token: jax.Array, action: jax.Array, env_id: jax.Array | None):
        """Send `action` [batch, ...] to environments `env_id` (None: all, in order) and receive the next batch:
        ``(token, obs, reward, terminated, truncated, env_id)``."""
        xla_pool = self._xla_pool(action.shape[0], fresh=False)
        with self._scope():
            token = xla_pool.send(self._state_token(xla_pool, token), action.astype(self.action_dtype), env_id)
        token, *rest = self._recv(xla_pool, token)
        return (self._state_token(xla_pool, token), *rest)

    def _before_reset(self, xla_pool: _XLAPool) -> None:
        """On the host, before EnvPool's reset: a sync pool may be reset again (no environment is stepping between
        two calls)."""

    def _traced_reset(self, seeds: jax.Array, num_envs: int):
        token, obs, _ = self._xla_reset(seeds.shape[0] * num_envs, seeds)
        return token, obs

    def _traced_step(self, token: jax.Array, action: jax.Array):
        token, obs, reward, terminated, truncated, _ = self._xla_step(token, action, None)
        return token, obs, reward, terminated, truncated, obs

    @staticmethod
    def _state_token(xla_pool: _XLAPool, token: jax.Array) -> jax.Array:
        """EnvPool's token (its pool's handle, an address) XOR that handle: zeros in the `PoolState`, so the same key
        gives the same bits on a fresh pool, and the handle again on the way back to `send` (a data dependency only:
        EnvPool ignores its value)."""
        return token ^ jnp.asarray(xla_pool.handle)

    def needs_retrace(self) -> bool:
        return any(pool.used for pool in self._alive)  # a compiled program may be bound to it

    def _evaluation_pool(self) -> HostPool:
        return EnvPoolTask(self.task, **self.options)  # evaluation seeds from its key: the callback route

    def close(self) -> None:
        """Nothing to close: a compiled program may still call this object's pools (they go with it)."""


class AsyncPoolState(NamedTuple):
    """An asynchronous pool's part of the rollout state. N = num_envs (answered per step), P = pool_envs.

    token:          uint8[8], threads the host calls in order (as `PoolState.token`).
    env_id:         [N] int32, the environments the current observations came from: the next actions go to them.
    pending_reset:  [P] bool, environment p's next answer is its reset (the step after its episode ended, or its first
                    reset still on its way): that answer completes no transition.
    episode_return: [P] float32, each environment's running return.
    episode_length: [P] int32, each environment's running length.
    """

    token: jax.Array
    env_id: jax.Array
    pending_reset: jax.Array
    episode_return: jax.Array
    episode_length: jax.Array


class EnvPoolAsync(EnvPoolXLA):
    """An EnvPool task in asynchronous mode (``env_kwargs={"backend": "xla", "pool_envs": P}``): the pool runs P
    environments, and each step sends the actions of the N = num_envs environments whose observations the policy
    just saw and receives the N that are ready first, whichever they are (EnvPool's ``batch_size = N < num_envs = P``).
    Slow environments no longer hold a step back.

    Each answer row carries its environment's id (`EnvStep.env_id`); the rollout routes actions and results by it
    (`training.rollout`), and GAE follows each environment's own sequence (`core.per_env`). Which environments answer
    first depends on the host's thread timing, so an asynchronous run is **not** reproducible bit for bit, unlike every
    other route. One seed per program: a vmap over seeds is refused (one pool answers in its own order, it cannot be
    split into seeds). Episode bookkeeping and NEXT_STEP masking are the sync pool's (`base.advance`), per environment.

    Args:
      task, seed, **options: as `EnvPoolXLA` (the pool of P environments gets ``pool_seed(P) + i``).
      pool_envs: P, the number of environments the pool runs (at least num_envs).
    """

    def __init__(self, task: str, pool_envs: int, seed: int = 0, **options: Any):
        if not isinstance(pool_envs, int) or isinstance(pool_envs, bool) or pool_envs < 1:
            raise ValueError(f"PPOConfig.env_kwargs['pool_envs'] must be a positive integer for '{PREFIX}{task}', "
                             f"got {pool_envs!r}")
        self.pool_envs = pool_envs
        super().__init__(task, seed=seed, **options)
        self.spec = self.spec._replace(pool_envs=pool_envs)
        self.name = f"env '{PREFIX}{task}' (xla backend, async pool of {pool_envs})"
        self._async_step = self._single_seed(self._xla_step, "step")

    def pool_seed(self, batch: int) -> int:
        """The seed of the pool of P environments, whatever `batch` answers per step (environment i: seed + i)."""
        return super().pool_seed(self.pool_envs)

    def _make_xla(self, batch: int, seed: int):
        if batch > self.pool_envs:
            raise ValueError(f"{self.name}: num_envs ({batch}) must not exceed PPOConfig.env_kwargs['pool_envs'] "
                             f"({self.pool_envs}): each step answers num_envs of the pool's environments")
        return self._envpool.make(self.task, env_type="gymnasium", num_envs=self.pool_envs, batch_size=batch,
                                  seed=seed, **self.options)

    def _before_reset(self, xla_pool: _XLAPool) -> None:
        """Refuse to reset a pool that has run: P - N of its environments are still stepping the actions last sent
        (EnvPool would reset them under its own threads' feet), so every reset needs a fresh pool, that is a program
        traced again (make_train's function and the command line do it; a program you jit yourself can reset once)."""
        if xla_pool.used:
            self._fail(HostEnvError(
                f"{self.name} was reset again by a program that already ran: its environments are still stepping "
                "the last actions sent, so an asynchronous pool is reset once per traced program (call make_train's "
                "function again, or trace your own program again: jax.jit of a new function)"))

    def _single_seed(self, fn, what: str):
        """`fn` as a traced call that runs under a vmap of size 1 (the command line's one seed) and refuses a larger
        one with a one-line error saying what to do instead."""
        call = custom_vmap(fn)

        @call.def_vmap
        def one_seed(axis_size, in_batched, *args):
            if axis_size != 1:
                raise ValueError(f"{self.name} trains one seed per program: its pool answers in its own order and "
                                 f"cannot be split into {axis_size} seeds (jax.vmap of {what}). Use num_seeds=1 (one "
                                 "process per seed), or drop pool_envs for the sync pool, which trains many seeds in "
                                 "one program")
            out = call(*(x[0] if batched else x for x, batched in zip(args, in_batched)))
            return tuple(x[None] for x in out), (True,) * len(out)

        return call

    def reset(self, keys: jax.Array) -> tuple[jax.Array, AsyncPoolState]:
        """Reset all P environments (traced); the first N to answer: ``(obs [N, *obs_shape], AsyncPoolState)``."""
        num_envs = keys.shape[0]
        seed = jax.random.randint(keys[0], (1,), 0, SEED_LIMIT, jnp.int32)
        reset = self._single_seed(lambda seed: self._xla_reset(num_envs, seed), "reset")
        token, obs, env_id = reset(seed)
        pending = jnp.ones((self.pool_envs,), bool).at[env_id].set(False)
        state = AsyncPoolState(token, env_id, pending, jnp.zeros((self.pool_envs,), jnp.float32),
                               jnp.zeros((self.pool_envs,), jnp.int32))
        return self.convert_obs(obs), state

    def step(self, keys: jax.Array, state: AsyncPoolState, action: jax.Array) -> EnvStep:
        """Send `action` [N, ...] to environments ``state.env_id``; the N that answer first, with their ids."""
        del keys
        token, obs, reward, terminated, truncated, env_id = self._async_step(state.token, self.convert_action(action),
                                                                             state.env_id)
        rows = PoolState(token, state.pending_reset[env_id], state.episode_return[env_id],
                         state.episode_length[env_id])
        rows, (episode_return, episode_length, valid, start) = advance(rows, token, reward, terminated, truncated,
                                                                      same_step=False)
        new_state = AsyncPoolState(token, env_id, state.pending_reset.at[env_id].set(rows.pending_reset),
                                   state.episode_return.at[env_id].set(rows.episode_return),
                                   state.episode_length.at[env_id].set(rows.episode_length))
        obs = self.convert_obs(obs)
        return EnvStep(obs, new_state, reward, terminated, truncated, obs, episode_return, episode_length, valid,
                       start, env_id)
