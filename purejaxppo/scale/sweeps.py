"""`sweep`: many hyperparameter settings x many seeds of one config, trained by one compiled program on every device.

    result = sweep(PPOConfig(env_name="CartPole-v1"), num_seeds=8,
                   learning_rate=[1e-4, 3e-4, 1e-3], entropy_coeff=[0.0, 0.01])   # a 3 x 2 grid, 8 seeds each
    result.metrics["episode_return"]   # [3, 2, 8, num_updates]
    result.axes                        # ("learning_rate", "entropy_coeff", "seed", "update")
    result.best("episode_return")      # {"learning_rate": ..., "entropy_coeff": ...}

How it works. Only float hyperparameters (`config.HYPERPARAMETERS`, the config's pytree leaves) can be swept: every
(setting, seed) cell is the same program with different numbers, so the cells are flattened into one batch axis B,
`jax.vmap`-ed, and the batch is split over the devices of a `jax.sharding.Mesh` with `shard_map` inside a `jit` whose
inputs and outputs carry a `NamedSharding`. Each device trains its own cells start to finish: there is no cross-device
traffic during training, and per-cell results are bit-identical to a one-device sweep (on CPU). When B does not divide
by the device count, the batch is padded with copies of the last cell and the copies are dropped from the result.
Fields that set shapes or the program's structure (`num_envs`, `num_steps`, `network`, `hidden_sizes`, ...) cannot be
swept this way; loop over them in Python, one `sweep` (one compile) per value.

Blocks. On a CPU a device trains its cells in blocks of at most `CPU_CELLS_PER_BLOCK` (32): ``lax.map`` over the
blocks, ``vmap`` inside each, so one block's parameters, optimizer state and activations stay in the processor's cache
while it trains; all 256 cells at once spill it (on the 2-core EPYC: 1.2-1.3x more steps/s at 256 CartPole cells, the
same bits; benchmarks/results/seed-blocks-cpu-2core.md). Accelerators run every cell at once.

Seeds. Seed i of every setting trains with the key ``jax.random.split(jax.random.key(seed), num_seeds)[i]`` (`seed`
defaults to 0), the key a lone run ``make_train(config.replace(**setting))(key)`` would take to reproduce that cell.
All settings share the same seed keys (common random numbers), so settings are compared on the same seeds.

Several hosts. After ``jax.distributed.initialize()`` the default mesh holds every process's devices
(`jax.devices()`), and every process runs the same `sweep` call: the cells are spread over all devices of all hosts,
and every process gets the whole gathered `SweepResult` (``process_allgather``).
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import io_callback, multihost_utils
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from purejaxppo.compiler import jit
from purejaxppo.core import streams
from purejaxppo.config import HYPERPARAMETERS, STATIC_FIELDS, PPOConfig, field_names, with_hyperparameters
from purejaxppo.envs.pools import check_host_pool_placement
from purejaxppo.training.train import RunState, init, make_setup, run, update

BATCH_AXIS = "batch"
CPU_CELLS_PER_BLOCK = 32  # cells a CPU device trains together (see "Blocks" above)
DEFAULT_LAST = 10  # `best` and `scores` judge a setting by its last 10 updates (mean over those and over seeds)


class SweepResult(NamedTuple):
    """The metrics of every (setting, seed) cell of a sweep, as host NumPy arrays.

    metrics: name -> ``[*setting_shape, num_seeds, num_updates]`` (names as in `train.METRIC_NAMES`).
    axes: the names of those axes: the swept hyperparameters of a grid (in keyword order), or ``("setting",)`` for a
      list of settings, or nothing for a plain multi-seed run; then ``"seed"`` and ``"update"``.
    coords: axis name -> the values along it (a grid's values, setting indices, seed indices; not "update").
    settings: the hyperparameter values of each setting, flat, in C order over the setting axes (a grid's cell
      ``(i, j)`` is ``settings[i * n_j + j]``).
    config: the base config (each setting is ``config.replace(**setting)``).
    seed: the base seed: seed i's key is ``jax.random.split(jax.random.key(seed), num_seeds)[i]``.
    state: with ``keep_state=True``, the final `RunState`s, leaves ``[*setting_shape, num_seeds, ...]``; else None.
    """

    metrics: dict[str, np.ndarray]
    axes: tuple[str, ...]
    coords: dict[str, tuple]
    settings: tuple[dict[str, float], ...]
    config: PPOConfig
    seed: int
    state: Any = None

    @property
    def setting_shape(self) -> tuple[int, ...]:
        """The shape of the setting axes (``()`` for a plain multi-seed run)."""
        return tuple(len(self.coords[a]) for a in self.axes[:-2])

    def config_at(self, index: int | tuple[int, ...]) -> PPOConfig:
        """The `PPOConfig` of one setting, by its (flat or grid) index."""
        flat = index if isinstance(index, int) else int(np.ravel_multi_index(index, self.setting_shape))
        return self.config.replace(**self.settings[flat])

    def scores(self, metric: str = "episode_return", last: int = DEFAULT_LAST) -> np.ndarray:
        """``[*setting_shape]``: each setting's `metric` averaged over its seeds and its `last` updates.

        NaNs (updates in which no episode finished) are ignored; a setting with no value at all scores NaN.
        """
        if metric not in self.metrics:
            raise ValueError(f"metric must be one of {sorted(self.metrics)}, got {metric!r}")
        if not isinstance(last, int) or isinstance(last, bool) or last < 1:
            raise ValueError(f"last must be a positive number of updates, got {last!r}")
        window = self.metrics[metric][..., -last:].astype(np.float64)
        window = window.reshape((*self.setting_shape, -1))
        finite = np.isfinite(window)
        counts = finite.sum(-1)
        totals = np.where(finite, window, 0.0).sum(-1)
        return np.where(counts > 0, totals / np.maximum(counts, 1), np.nan)

    def best(self, metric: str = "episode_return", last: int = DEFAULT_LAST, maximize: bool = True) -> dict:
        """The setting with the best `scores` (mean over seeds and over the last `last` updates, default 10).

        Returns that setting's hyperparameter values (``{}`` for a plain multi-seed run). Use ``maximize=False`` for
        losses. Raises a ValueError when no setting has a finite score.
        """
        scores = self.scores(metric, last).reshape(-1)
        if not np.isfinite(scores).any():
            raise ValueError(f"no setting has a finite {metric!r} over its last {last} updates")
        pick = np.nanargmax(scores) if maximize else np.nanargmin(scores)
        return dict(self.settings[int(pick)])


class _Plan(NamedTuple):
    """What to train: the setting axes, their coordinates and the flat list of settings (all validated)."""

    axes: tuple[str, ...]
    coords: dict[str, tuple]
    settings: tuple[dict[str, float], ...]
    names: tuple[str, ...]  # the swept hyperparameters, in order


def sweep(
    config: PPOConfig,
    num_seeds: int = 1,
    *,
    seed: int = 0,
    settings: Sequence[Mapping[str, float]] | None = None,
    mesh: Mesh | None = None,
    keep_state: bool = False,
    env=None,
    env_params=None,
    progress: Callable[[int], None] | None = None,
    cells_per_block: int | None = None,
    **grid: Sequence[float],
) -> SweepResult:
    """Train every setting x `num_seeds` seeds of `config` in one compiled program, sharded over `mesh`'s devices.

    Args:
      config: the base `PPOConfig`; its static fields (shapes, network, environment) are shared by every cell.
      num_seeds: seeds per setting; seed i's key is ``jax.random.split(jax.random.key(seed), num_seeds)[i]``.
      seed: the base seed (default 0).
      settings: a list of ``{hyperparameter: value}`` dicts (axes ``("setting", "seed", "update")``); a setting that
        omits a swept name keeps `config`'s value. Exclusive with `grid`.
      mesh: the devices to spread the cells over (all of its axes, flattened). Default: every device of every process,
        ``Mesh(jax.devices(), ("batch",))``. A one-device mesh runs unsharded.
      keep_state: also return the final `RunState` of every cell (memory: one full state per cell).
      env, env_params: a custom environment, as for `make_train`.
      progress: called on the host with ``u`` each time a device has finished update u of its cells (once per
        device and update: the command line's progress bar). The program then steps every device's cells together,
        update by update (``scan(vmap(update))`` rather than ``vmap(scan(update))``: the same arithmetic, though XLA
        may round differently), with a host callback in it, so it is not kept in the persistent compilation cache.
      cells_per_block: how many of a device's cells train together (``vmap``); the blocks run one after another
        (``lax.map``). Default: `CPU_CELLS_PER_BLOCK` on a CPU mesh, all of a device's cells on an accelerator.
      **grid: ``name=[values...]`` for float hyperparameters: the Cartesian product, axes in keyword order.

    Returns:
      A `SweepResult`; metrics ``[*setting_shape, num_seeds, num_updates]``.

    Raises:
      ValueError: for a static field (it sets array shapes or the program's structure: sweep it in a Python loop), an
        unknown name, an empty or non-numeric value list, an invalid value (the same error `PPOConfig` gives),
        `settings` together with a grid, num_seeds < 1 or cells_per_block < 1.
    """
    if not isinstance(config, PPOConfig):
        raise TypeError(f"sweep needs a PPOConfig, got {type(config).__name__}")
    if not isinstance(num_seeds, int) or isinstance(num_seeds, bool) or num_seeds < 1:
        raise ValueError(f"num_seeds must be an integer >= 1, got {num_seeds!r}")
    streams.check_seed(seed)
    if cells_per_block is not None and (not isinstance(cells_per_block, int) or isinstance(cells_per_block, bool)
                                        or cells_per_block < 1):
        raise ValueError(f"cells_per_block must be an integer >= 1 or None, got {cells_per_block!r}")
    plan = _plan(config, settings, grid)
    mesh = default_mesh() if mesh is None else mesh
    check_is_mesh(mesh)
    block = default_cells_per_block(mesh) if cells_per_block is None else cells_per_block
    keys, values = _cell_inputs(config, plan, num_seeds, seed)
    pad = -len(keys) % mesh.size  # pad the batch to a multiple of the device count with copies of the last cell
    keys, values = _pad(keys, pad), {name: _pad(v, pad) for name, v in values.items()}
    program = (_program(config, plan.names, mesh, keep_state, block, env, env_params) if progress is None else
               _build_program(config, plan.names, mesh, keep_state, block, env, env_params, progress))
    sharding = NamedSharding(mesh, P(mesh.axis_names))  # the batch axis of cells split over every axis of the mesh
    state, metrics = program(_global_array(keys, sharding), {n: _global_array(v, sharding) for n, v in values.items()})
    state, metrics = gather_to_host((state, metrics))
    num_cells = len(plan.settings) * num_seeds
    shape = (*(len(plan.coords[a]) for a in plan.axes), num_seeds)

    def unbatch(x):  # [padded cells, ...] -> [*setting_shape, num_seeds, ...]
        return x[:num_cells].reshape((*shape, *x.shape[1:]))

    metrics = {name: unbatch(m) for name, m in metrics.items()}
    if state is not None:
        state = jax.tree.map(unbatch, state)
        state = state.replace(key=jax.random.wrap_key_data(state.key, impl=_key_impl()))
    coords = {**plan.coords, "seed": tuple(range(num_seeds))}
    return SweepResult(metrics, (*plan.axes, "seed", "update"), coords, plan.settings, config, seed, state)


def _key_impl():
    """The PRNG implementation of ``jax.random.key`` (keys travel as their raw uint32 data)."""
    return jax.random.key_impl(jax.random.key(0))


def check_is_mesh(mesh) -> None:
    """Refuse a `mesh` argument (of `sweep`, `pbt`) that is not a `Mesh` (a string, a device list, ...)."""
    if not isinstance(mesh, Mesh):
        raise TypeError(f"mesh must be a jax.sharding.Mesh (or None for the default), got {mesh!r}")


def default_cells_per_block(mesh: Mesh) -> int | None:
    """`CPU_CELLS_PER_BLOCK` when `mesh` is made of CPU devices, else None (every cell of a device at once)."""
    return CPU_CELLS_PER_BLOCK if mesh.devices.flat[0].platform == "cpu" else None


def in_blocks(fn: Callable, block: int | None) -> Callable:
    """``jax.vmap(fn)`` over the leading axis B of its arguments, computed at most `block` rows at a time.

    B rows become the fewest blocks of at most `block` rows, of equal size (the last row repeated to fill the last
    block, its copies dropped from the result); rows inside a block are vmapped, the blocks run one after another
    (``lax.map``). None, or ``block >= B``, is one plain ``vmap``. Every block then holds at least ``block // 2`` rows;
    on the CPU, with blocks of 4 rows or more, a row gets the same bits as under the plain vmap (XLA:CPU compiles
    batches of 1-3 rows differently; tests/scale/test_sweep.py).
    """
    def mapped(*args):
        rows = jax.tree.leaves(args)[0].shape[0]
        if block is None or block >= rows:
            return jax.vmap(fn)(*args)
        count = -(-rows // block)  # the fewest blocks of at most `block` rows ...
        size = -(-rows // count)  # ... of equal size

        def blocked(x):  # [B, ...] -> [count, size, ...]
            filled = jnp.concatenate([x, jnp.repeat(x[-1:], count * size - rows, axis=0)])
            return filled.reshape(count, size, *x.shape[1:])

        out = jax.lax.map(lambda a: jax.vmap(fn)(*a), jax.tree.map(blocked, args))
        return jax.tree.map(lambda y: y.reshape(count * size, *y.shape[2:])[:rows], out)

    return mapped


def default_mesh() -> Mesh:
    """A one-axis mesh over every device of every process (``jax.devices()``)."""
    return Mesh(np.array(jax.devices()), (BATCH_AXIS,))


# ------------------------------------------------------------------------------------------------------- planning
def _check_name(name: str) -> None:
    if name in STATIC_FIELDS:
        raise ValueError(
            f"cannot sweep {name!r}: it is a static field of PPOConfig (it sets array shapes or the program's "
            f"structure, so every value needs its own compiled program). Sweep it in a Python loop, e.g. "
            f"`for v in values: sweep(config.replace({name}=v), ...)`. "
            f"Sweepable hyperparameters: {list(HYPERPARAMETERS)}"
        )
    if name not in field_names():
        raise ValueError(f"cannot sweep {name!r}: PPOConfig has no such field. Sweepable: {list(HYPERPARAMETERS)}")


def _number(name: str, value: Any) -> float:
    if isinstance(value, (bool, str, bytes)):
        raise ValueError(f"PPOConfig.{name} must be a number, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"PPOConfig.{name} must be a number, got {value!r}") from None


def _check_values(name: str, values: Any) -> tuple[float, ...]:
    if (isinstance(values, (str, bytes, Mapping)) or not hasattr(values, "__len__") or np.ndim(values) != 1
            or len(values) == 0):  # a 0-d array has __len__ but no length
        raise ValueError(f"sweep({name}=...) needs a non-empty list of numbers, got {values!r}")
    return tuple(_number(name, v) for v in values)


def _plan(config: PPOConfig, settings, grid: Mapping[str, Any]) -> _Plan:
    """Validate the requested settings (each through `config.replace`) and lay out their axes."""
    if settings is not None and grid:
        raise ValueError(f"pass either settings=[...] or a grid of keyword lists, not both (got grid {sorted(grid)})")
    if settings is None:
        for name in grid:
            _check_name(name)
        columns = {name: _check_values(name, values) for name, values in grid.items()}
        names = tuple(columns)
        cells = tuple(dict(zip(names, combo)) for combo in itertools.product(*columns.values()))
        axes, coords = names, dict(columns)
    else:
        if isinstance(settings, Mapping) or not isinstance(settings, Sequence) or len(settings) == 0:
            raise ValueError(f"settings must be a non-empty list of {{hyperparameter: value}} dicts, got {settings!r}")
        if not all(isinstance(s, Mapping) for s in settings):
            raise ValueError(f"settings must be a list of {{hyperparameter: value}} dicts, got {settings!r}")
        names = tuple(dict.fromkeys(name for s in settings for name in s))
        for name in names:
            _check_name(name)
        cells = tuple(
            {name: _number(name, s.get(name, getattr(config, name))) for name in names} for s in settings
        )
        axes, coords = ("setting",), {"setting": tuple(range(len(cells)))}
    for cell in cells:
        config.replace(**cell)  # the same ValueError a user building this config would get
    return _Plan(axes, coords, cells, names)


def _cell_inputs(config: PPOConfig, plan: _Plan, num_seeds: int, seed: int):
    """Flat per-cell inputs, setting-major: key data ``[S*K, ...]`` uint32 and each swept value ``[S*K]`` float32."""
    seed_keys = np.asarray(jax.random.key_data(jax.random.split(jax.random.key(seed), num_seeds)))
    keys = np.tile(seed_keys, (len(plan.settings),) + (1,) * (seed_keys.ndim - 1))
    values = {
        name: np.repeat(np.asarray([s[name] for s in plan.settings], np.float32), num_seeds) for name in plan.names
    }
    return keys, values


def _pad(x: np.ndarray, pad: int) -> np.ndarray:
    return x if pad == 0 else np.concatenate([x, np.repeat(x[-1:], pad, axis=0)])


# -------------------------------------------------------------------------------------------------------- program
@functools.lru_cache(maxsize=8)
def _cached_program(config: PPOConfig, names: tuple[str, ...], mesh: Mesh, keep_state: bool, block: int | None):
    return _build_program(config, names, mesh, keep_state, block, None, None)


def _program(config, names, mesh, keep_state, block, env, env_params):
    """The jitted, sharded ``(key_data [B, ...], {name: [B]}) -> (state | None, metrics [B, U])``; cached per shape."""
    try:
        cacheable = env is None and env_params is None and hash(config) is not None
    except TypeError:  # an unhashable env_kwargs value
        cacheable = False
    if cacheable:
        return _cached_program(config, names, mesh, keep_state, block)
    return _build_program(config, names, mesh, keep_state, block, env, env_params)


def _build_program(config, names, mesh, keep_state, block, env, env_params, progress=None):
    setup = make_setup(config, env, env_params)
    check_host_pool_placement(setup.env, "sweep", devices=mesh.size)
    impl = _key_impl()

    def cell(key_data: jax.Array, values: dict[str, jax.Array]) -> tuple[RunState | None, dict]:
        hp = with_hyperparameters(config, values)
        state, metrics = run(setup, init(setup, jax.random.wrap_key_data(key_data, impl=impl), hp), hp)
        return (state.replace(key=jax.random.key_data(state.key)) if keep_state else None), metrics

    def cells_with_progress(key_data: jax.Array, values: dict[str, jax.Array]):
        """This device's cells stepped together, update by update, calling `progress` after each update."""
        hps = lambda v: with_hyperparameters(config, v)  # noqa: E731
        states = jax.vmap(lambda k, v: init(setup, jax.random.wrap_key_data(k, impl=impl), hps(v)))(key_data, values)

        def step(states, _):
            states, metrics = in_blocks(lambda s, v: update(setup, s, hps(v)), block)(states, values)
            io_callback(lambda u: progress(int(u[0])), None, states.updates_done, ordered=False)
            return states, metrics

        states, metrics = jax.lax.scan(step, states, None, length=config.num_updates)
        metrics = jax.tree.map(lambda m: jnp.swapaxes(m, 0, 1), metrics)  # [U, cells] -> [cells, U]
        return (states.replace(key=jax.random.key_data(states.key)) if keep_state else None), metrics

    cells = P(mesh.axis_names)  # the batch axis split over every axis of the mesh
    # shard_map: each device runs the vmapped program on its own cells (no collectives); jit places the batch.
    body = in_blocks(cell, block) if progress is None else cells_with_progress
    local = jax.shard_map(body, mesh=mesh, in_specs=(cells, cells), out_specs=cells, check_vma=False)
    sharding = NamedSharding(mesh, cells)
    return jit(local, in_shardings=(sharding, sharding), out_shardings=sharding)


def _global_array(x: np.ndarray, sharding: NamedSharding) -> jax.Array:
    """A global array from host data every process holds in full (each process places its own shards)."""
    return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])


def gather_to_host(tree):
    """Host NumPy copies of a tree of global arrays, on every process."""
    if jax.process_count() == 1:
        return jax.device_get(tree)
    return multihost_utils.process_allgather(tree, tiled=True)

