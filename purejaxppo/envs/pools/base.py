"""The machinery every host pool shares: `HostPool`, an `Env` whose environments live on the host (EnvPool's C++
pools, Gymnasium's vector envs) and are stepped from inside the jitted program.

    pool.reset(keys [N])              -> (obs [N, *obs_shape], PoolState)        traced; one host call
    pool.step(keys [N], state, action) -> EnvStep (with `valid`, `episode_start`) traced; one host call

**One host call per step, whatever the vmaps.** `reset` and `step` are `jax.custom_batching.custom_vmap` functions.
Under ``jax.vmap`` over S run keys (and nested vmaps, e.g. a sweep's settings x seeds, or `shard_map` on one device)
their rule merges the ``[S, N]`` batch into ONE host call on a pool of ``S * N`` environments, seed s owning rows
``[s * N, (s + 1) * N)``, and splits the results back. So ``jax.vmap(make_train(config))(keys)``, `sweep` and the
command line's ``--num-seeds`` work unchanged, and seed s of an S-seed run steps exactly the environments a one-seed
run with key s steps.

**Seeds.** A pool's environments are seeded from the run key's RESET stream: ``reset(keys)`` draws
``seed = randint(keys[0], [0, 2**30))`` with ``keys = split(fold_in(key, 10_000), N)`` (`rollout.reset_envs`), and
environment i of that seed gets ``seed + i``. Two runs' ranges ``[seed, seed + N)`` overlap only by chance (about
``2N / 2**30``), unlike ``seed + small offset`` schemes. A run resumed at update u restarts its pool from
``fold_in(fold_in(key, 10_000), u)`` instead (`train.restart_envs`: a checkpoint cannot hold host environments).
Evaluation resets its own pool (`HostPool.for_evaluation`) with keys from the evaluation key (`play_episodes`), so it
never replays or advances the training pool.

**NEXT_STEP pools** (EnvPool, always) reset an environment on the step *after* the one that ends its episode: that
step's action is ignored, its reward is 0, its obs is the new episode's first. `advance` flags it ``valid=False``
(`EnvSpec.next_step_reset` is then True and the learner masks it) and sets `episode_start` on it. On the done step
itself `obs` is the terminal observation and ``final_obs == obs``, the pre-reset successor a truncation bootstraps
from. SAME_STEP pools (Gymnasium here) return the next episode's obs on the done step and the terminal one as
`final_obs`, exactly as gymnax does; nothing is masked.

**One live state.** The host holds one pool: a `PoolState` continues only from the last state the pool returned
(its `token` records a stamp of the reset's seeds and the step count, and the host checks it), so stepping from an
older state, or from a checkpoint restored into another process, is a one-line `HostEnvError` rather than silently
wrong data.

**Errors.** An exception on the host is recorded with the pool's name and its host step, and `host_errors` (used by
`make_train`'s train function, `evaluate` and the command line's run loop) turns the runtime error jax raises into
one line, raised from the environment's own exception: ``HostEnvError: gymnasium env 'X' raised in step (host step
7): RuntimeError: ...``. The pool is then rebuilt on its next reset.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import zlib
from collections.abc import Callable, Iterator
from typing import NamedTuple

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
from jax.custom_batching import custom_vmap
from jax.experimental import io_callback

from purejaxppo.envs.spec import EnvSpec, EnvStep
from purejaxppo.envs.suites.base import action_facts

SEED_LIMIT = 2**30  # pool seeds are drawn in [0, 2**30), so seed + i stays a positive int32
TOKEN = jax.ShapeDtypeStruct((8,), np.uint8)  # orders the host calls (and is EnvPool's XLA handle's shape)
CALLBACK_LOGGER = "jax._src.callback"  # where JAX logs a failed io_callback with its traceback


class PoolState(NamedTuple):
    """A host pool's part of the rollout state, for N environments (``[S, ...]`` leaves under a vmap over S seeds).

    token:          uint8[8], threads the host calls in order; the callback pools store in it a stamp of the seeds
                    of their last reset and the step count (a function of the run's key, so the same key gives the
                    same token), which the host checks.
    pending_reset:  [N] bool, the previous step ended an episode: in a NEXT_STEP pool this step is the reset step.
    episode_return: [N] float32, running return of the current episode.
    episode_length: [N] int32, running length of the current episode.
    """

    token: jax.Array
    pending_reset: jax.Array
    episode_return: jax.Array
    episode_length: jax.Array


class HostStep(NamedTuple):
    """What a pool's host step returns, NumPy arrays over its B environments: obs [B, ...], reward [B],
    terminated [B], truncated [B], final_obs [B, ...] (the pre-reset successor; == obs in NEXT_STEP pools)."""

    obs: np.ndarray
    reward: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    final_obs: np.ndarray


class HostEnvError(RuntimeError):
    """A host environment failed inside the jitted program; the message (one line) names it and the host step."""


def one_line(error: BaseException, limit: int = 200) -> str:
    """``"Type: first line of the message"`` cut to about `limit` characters."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = lines[0] if lines else ""
    text = text if len(text) <= limit else text[: limit - 3] + "..."
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def advance(state: PoolState, token, reward, terminated, truncated, same_step: bool) -> tuple[PoolState, tuple]:
    """The bookkeeping every pool shares: validity, running episode statistics, the next `PoolState`.

    Returns ``(state, (episode_return, episode_length, valid, episode_start))``, each [N]: the running totals include
    this step (the finished episode's totals on a done step, 0 on an invalid step).
    """
    reward = reward.astype(jnp.float32)
    done = terminated | truncated
    valid = jnp.ones_like(done) if same_step else ~state.pending_reset
    episode_return = state.episode_return + jnp.where(valid, reward, 0.0)
    episode_length = state.episode_length + valid.astype(jnp.int32)
    restart = done | ~valid
    new_state = PoolState(
        token,
        pending_reset=jnp.zeros_like(done) if same_step else done,
        episode_return=jnp.where(restart, 0.0, episode_return),
        episode_length=jnp.where(restart, 0, episode_length),
    )
    stats = (jnp.where(valid, episode_return, 0.0), jnp.where(valid, episode_length, 0), valid,
             done if same_step else ~valid)
    return new_state, stats


def _broadcast(x: jax.Array, size: int) -> jax.Array:
    return jnp.broadcast_to(x, (size, *x.shape))


def _split(x: jax.Array, size: int) -> jax.Array:
    return x.reshape((size, x.shape[0] // size, *x.shape[1:]))


def _merge(x: jax.Array) -> jax.Array:
    return x.reshape((-1, *x.shape[2:]))


class Observations(NamedTuple):
    """How a pool's raw observations become the policy's: raw (what the host returns per environment), one_hot (the
    number of values of a Discrete observation, one-hot encoded in JAX; 0: none), channels_first (an image stack
    ``[C, H, W]`` transposed to ``[H, W, C]`` in JAX, as EnvPool's Atari frames)."""

    raw: jax.ShapeDtypeStruct
    one_hot: int = 0
    channels_first: bool = False


def describe_spaces(name: str, obs_space, action_space, max_steps: int, next_step_reset: bool,
                    channels_first: bool = False) -> tuple[EnvSpec, Observations]:
    """`EnvSpec` and `Observations` of a pool from its per-environment Gymnasium spaces, or a one-line ValueError
    naming the environment and the unsupported space.

    Observations: a Box keeps its shape; float64 (and other non-uint8 dtypes) arrive as float32, uint8 frames stay
    uint8 until inside the network; a Discrete observation is one-hot encoded (as for gymnax). Actions: Discrete
    (from 0) or a 1-d Box.
    """
    if isinstance(obs_space, gymnasium.spaces.Box):
        dtype = np.dtype(np.uint8) if obs_space.dtype == np.uint8 else np.dtype(np.float32)
        observations = Observations(jax.ShapeDtypeStruct(tuple(obs_space.shape), dtype),
                                    channels_first=channels_first and dtype == np.uint8 and len(obs_space.shape) == 3)
        obs_shape = tuple(obs_space.shape)
        if observations.channels_first:
            obs_shape = (*obs_shape[1:], obs_shape[0])
    elif isinstance(obs_space, gymnasium.spaces.Discrete) and int(obs_space.start) == 0:
        observations = Observations(jax.ShapeDtypeStruct((), np.dtype(np.int32)), one_hot=int(obs_space.n))
        obs_shape, dtype = (int(obs_space.n),), np.dtype(np.float32)
    else:
        raise ValueError(f"{name}: observation space {type(obs_space).__name__} is not supported (use Box or "
                         "Discrete; flatten Dict/Tuple spaces with gymnasium.wrappers.FlattenObservation)")
    if 0 in obs_shape:
        raise ValueError(f"{name}: observations have shape {obs_shape}, with no elements")
    discrete, num_actions, low, high = action_facts(action_space, f"{name}: action space {action_space}")
    spec = EnvSpec(obs_shape, discrete, num_actions, low, high, False, int(max_steps), dtype, next_step_reset)
    return spec, observations


class HostPool:
    """An `Env` (``spec``, ``reset``, ``step``, ``action_mask``) whose environments run on the host.

    Subclasses set `name` (for messages), `spec`, `same_step` and `observations` (`describe_spaces` gives the last
    two), and implement the host side: ``_host_reset(seeds, num_envs) -> obs [K*N, ...]``
    (environment i of seed k seeded ``seeds[k] + i``), ``_host_step(action [B, ...]) -> HostStep``,
    ``_evaluation_pool() -> HostPool`` and `close`. EnvPool's XLA route replaces the traced calls themselves
    (`_traced_reset`, `_traced_step`).
    """

    name: str = "host pool"
    spec: EnvSpec
    same_step: bool = False
    observations: Observations
    params = None  # Env's interface: host pools take their options when built
    wrapped = None

    def __init__(self) -> None:
        self.error: HostEnvError | None = None
        self._stamp, self._steps, self._live, self._batch = 0, 0, False, 0
        self._reset_calls: dict[int, Callable] = {}
        self._step_call = self._make_step_call()
        self._twin: HostPool | None = None

    # ------------------------------------------------------------------------------------------- the Env interface
    def reset(self, keys: jax.Array) -> tuple[jax.Array, PoolState]:
        """Reset N = ``len(keys)`` environments (traced): ``(obs [N, *obs_shape], PoolState)``; seeds as in the module
        docstring."""
        num_envs = keys.shape[0]
        seed = jax.random.randint(keys[0], (1,), 0, SEED_LIMIT, jnp.int32)
        token, obs = self._reset_call(num_envs)(seed)
        zeros = jnp.zeros((num_envs,), jnp.float32)
        state = PoolState(token, zeros.astype(bool), zeros, zeros.astype(jnp.int32))
        return self.convert_obs(obs), state

    def step(self, keys: jax.Array, state: PoolState, action: jax.Array) -> EnvStep:
        """Step N environments with `action` [N] (int) or [N, A] (float; clipped to the action space's bounds). The
        keys are unused: a host environment's randomness is its own, seeded at reset."""
        del keys
        token, obs, reward, terminated, truncated, final_obs = self._step_call(state.token, self.convert_action(action))
        state, (episode_return, episode_length, valid, start) = advance(state, token, reward, terminated, truncated,
                                                                        self.same_step)
        return EnvStep(self.convert_obs(obs), state, reward, terminated, truncated, self.convert_obs(final_obs),
                       episode_return, episode_length, valid, start)

    def action_mask(self, state) -> None:
        return None

    def for_evaluation(self) -> HostPool:
        """The pool evaluation steps: another pool of the same environments (the callback route), never this one."""
        if self._twin is None:
            self._twin = self._evaluation_pool()
        return self._twin

    # ---------------------------------------------------------------------------------------- JAX-side conversions
    def convert_obs(self, obs: jax.Array) -> jax.Array:
        """The host's raw observations ``[B, *raw]`` as the policy sees them ``[B, *spec.obs_shape]``."""
        if self.observations.one_hot:
            return jax.nn.one_hot(obs, self.observations.one_hot)
        if self.observations.channels_first:
            return jnp.moveaxis(obs, -3, -1)
        return obs

    def convert_action(self, action: jax.Array) -> jax.Array:
        """int32 discrete actions; continuous ones clipped into the action space's bounds (the agent keeps the
        unclipped sample for its log-probability, as `wrappers.ClipAction` does)."""
        if self.spec.discrete:
            return action.astype(jnp.int32)
        low, high = np.asarray(self.spec.action_low, np.float32), np.asarray(self.spec.action_high, np.float32)
        return jnp.clip(action.astype(jnp.float32), low, high)

    # ------------------------------------------------------------------------------- vmap: one host call per step
    def _reset_call(self, num_envs: int) -> Callable:
        """``reset(seeds [K]) -> (token, obs [K * num_envs, ...])``, batched by merging (module docstring)."""
        if num_envs not in self._reset_calls:

            @custom_vmap
            def reset(seeds):
                return self._traced_reset(seeds, num_envs)

            @reset.def_vmap
            def merged(axis_size, in_batched, seeds):
                seeds = seeds if in_batched[0] else _broadcast(seeds, axis_size)
                token, obs = reset(_merge(seeds))
                return (_broadcast(token, axis_size), _split(obs, axis_size)), (True, True)

            self._reset_calls[num_envs] = reset
        return self._reset_calls[num_envs]

    def _make_step_call(self) -> Callable:
        @custom_vmap
        def step(token, action):
            return self._traced_step(token, action)

        @step.def_vmap
        def merged(axis_size, in_batched, token, action):
            token = token[0] if in_batched[0] else token  # every seed's copy is the same token
            action = action if in_batched[1] else _broadcast(action, axis_size)
            token, *rest = step(token, _merge(action))
            return (_broadcast(token, axis_size), *(_split(x, axis_size) for x in rest)), (True,) * 6

        return step

    # ------------------------------------------------------------------------------ the traced host calls (callback)
    def _token(self) -> np.ndarray:
        return np.array([self._stamp, self._steps], np.uint32).view(np.uint8)

    def _traced_reset(self, seeds: jax.Array, num_envs: int):
        batch = seeds.shape[0] * num_envs
        obs = jax.ShapeDtypeStruct((batch, *self.observations.raw.shape), self.observations.raw.dtype)

        def host(seeds):
            seeds = [int(s) for s in np.asarray(seeds)]
            raw = self._guard("reset", self._host_reset, seeds, num_envs)
            self._stamp, self._steps, self._live = zlib.crc32(np.asarray([num_envs, *seeds], np.int64)), 0, True
            self._batch = len(seeds) * num_envs
            return self._token(), self._host_array(raw, obs, "observations")

        return io_callback(host, (TOKEN, obs), seeds, ordered=False)

    def _traced_step(self, token: jax.Array, action: jax.Array):
        batch = action.shape[0]
        obs = jax.ShapeDtypeStruct((batch, *self.observations.raw.shape), self.observations.raw.dtype)
        flag = jax.ShapeDtypeStruct((batch,), np.bool_)
        shapes = (TOKEN, obs, jax.ShapeDtypeStruct((batch,), np.float32), flag, flag, obs)

        def host(token, action):
            self._check_token(np.asarray(token))
            if action.shape[0] != self._batch:
                self._fail(HostEnvError(
                    f"{self.name} was reset with {self._batch} environments but stepped with {action.shape[0]} "
                    "actions: under jax.vmap every vmapped axis must vary the run key too (each seed or cell its own "
                    "key), so that the reset is batched like the steps"))
            self._steps += 1
            out = self._guard("step", self._host_step, np.asarray(action))
            arrays = [self._host_array(x, shape, name)
                      for x, shape, name in zip(out, shapes[1:], HostStep._fields)]
            return (self._token(), *arrays)

        return io_callback(host, shapes, token, action, ordered=False)

    def _check_token(self, token: np.ndarray) -> None:
        stamp, steps = (int(x) for x in token.view(np.uint32))
        if not self._live or (stamp, steps) != (self._stamp, self._steps):
            where = f"step {self._steps} of reset {self._stamp:#x}" if self._live else "not reset"
            self._fail(HostEnvError(
                f"{self.name} was stepped from a stale state (step {steps} of reset {stamp:#x}; the pool is {where}): "
                "a host pool holds one live state, continued only from the last state it returned (a new init "
                "resets it; a checkpoint cannot hold it: resuming restarts it, train.restart_envs)"))

    def _host_array(self, x, shape: jax.ShapeDtypeStruct, what: str) -> np.ndarray:
        x = np.asarray(x)
        if x.shape != shape.shape:
            self._fail(HostEnvError(f"{self.name} returned {what} of shape {x.shape}, expected {shape.shape}"))
        return x.astype(shape.dtype, copy=False)

    def _guard(self, what: str, fn: Callable, *args):
        """``fn(*args)`` on the host, any exception recorded as a one-line `HostEnvError` (see `host_errors`)."""
        try:
            return fn(*args)
        except HostEnvError:
            raise
        except Exception as error:  # noqa: BLE001 - recorded, then re-raised inside the callback
            self._fail(HostEnvError(f"{self.name} raised in {what} (host step {self._steps}): {one_line(error)}"),
                       error)

    def _fail(self, error: HostEnvError, cause: BaseException | None = None):
        if self.error is None:  # the first failure is the one to report
            self.error = error
        self._live = False
        self._broken()
        raise error from cause

    def _broken(self) -> None:
        """Forget the host pool after a failure: the next reset builds a fresh one."""

    # ---------------------------------------------------------------------------------------------------- host side
    def _host_reset(self, seeds: list[int], num_envs: int) -> np.ndarray:
        raise NotImplementedError

    def _host_step(self, action: np.ndarray) -> HostStep:
        raise NotImplementedError

    def _evaluation_pool(self) -> HostPool:
        raise NotImplementedError

    def resume_at(self, update: int) -> None:
        """Say at which update the next reset (re)starts a run: 0 for a new run, u for one resumed at update u
        (`training.train.restart_envs`, whose reset key ``stream(key, RESET, u)`` already seeds the callback pools).
        EnvPool's XLA route, seeded from an integer rather than the key, mixes it into the seed of the pools it builds
        when it traces a reset."""

    def needs_retrace(self) -> bool:
        """Whether a compiled program over this pool must be traced again to start from fresh environments (EnvPool's
        XLA route, whose programs are bound to one pool object); the callback pools never need it."""
        return False

    def close(self) -> None:
        """Close the host environments (a later reset builds them again)."""


def pools_of(env) -> list[HostPool]:
    """`env` and its evaluation pool, if `env` is a host pool; else []."""
    if not isinstance(env, HostPool):
        return []
    return [env] + ([env._twin] if env._twin is not None else [])


class _RecordedFailures(logging.Filter):
    """Drops JAX's log record of a failed callback (``jax.io_callback failed`` and the host's traceback, written to
    stderr) once a pool has recorded the failure: `host_errors` reports it, chained to the environment's own
    exception."""

    def __init__(self, pools: list[HostPool]):
        super().__init__()
        self.pools = pools

    def filter(self, record: logging.LogRecord) -> bool:
        return not any(pool.error is not None for pool in self.pools)


@contextlib.contextmanager
def host_errors(env) -> Iterator[None]:
    """Turn a host pool's failure inside a jitted program (a long ``JaxRuntimeError: INTERNAL: CpuCallback error
    ...`` with the host's traceback, which JAX also logs) into the one-line `HostEnvError` the pool recorded, raised
    from the environment's own exception (its traceback, without JAX's frames). No-op for other envs."""
    pools = pools_of(env)
    if not pools:
        yield
        return
    for pool in pools:
        pool.error = None
    quiet = _RecordedFailures(pools)
    logger = logging.getLogger(CALLBACK_LOGGER)
    logger.addFilter(quiet)
    try:
        yield
    except HostEnvError:
        raise
    except Exception:
        recorded = next((pool.error for pool in pools if pool.error is not None), None)
        if recorded is None:
            raise
        raise HostEnvError(str(recorded)) from recorded.__cause__
    finally:
        logger.removeFilter(quiet)


class HostProgram:
    """`make_train`'s train function over a host pool: ``jax.jit(fn)`` that, called with concrete arrays, waits for
    the result and reports a host failure in one line (`host_errors`), and re-traces when the pool asks for it
    (`HostPool.needs_retrace`: EnvPool's XLA route, so that the same key gives the same bits on a second call).
    Called with tracers (inside your own ``jax.vmap`` or ``jax.jit``) it is the plain jitted function."""

    def __init__(self, fn: Callable, pool: HostPool):
        self._fn, self._pool = fn, pool
        self._jitted = jax.jit(fn)
        functools.update_wrapper(self, fn)

    def __call__(self, *args, **kwargs):
        if any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves((args, kwargs))):
            return self._jitted(*args, **kwargs)
        self._pool.resume_at(0)  # a whole run, from its first update
        if self._pool.needs_retrace():
            self._jitted = jax.jit(functools.partial(self._fn))  # a new function: traced again, on a fresh pool
        with host_errors(self._pool):
            return jax.block_until_ready(self._jitted(*args, **kwargs))

    def lower(self, *args, **kwargs):
        return self._jitted.lower(*args, **kwargs)


def check_host_pool_placement(env, where: str, devices: int = 1, axis_name=None) -> None:
    """Raise a one-line ValueError when a host pool would be stepped from several devices at once (data parallelism,
    or a sweep / pbt mesh of more than one device): each device's program would drive the one host pool."""
    if isinstance(env, HostPool) and (devices > 1 or axis_name is not None):
        raise ValueError(f"{where}: {env.name} is a host environment pool, stepped by one host call per step: it "
                         f"cannot be split over {devices if devices > 1 else 'several'} devices (use a mesh of one "
                         "device, or jax.vmap over seeds on one device)")
