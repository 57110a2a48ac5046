"""Chunked training of S seeds with live progress: one compiled program, called in blocks of updates.

`make_train` stays pure, and so does the command line's program. `ChunkRunner` compiles one program

    block(states [S], n) = fori_loop(0, n, body, (states, rows))       n <= B, B = `block` updates (static)
    body(i, states, rows) = states, metrics = vmap(update)(states)     # metrics: {name: [S]}
                            rows[i] = metrics                          # rows: {name: [B, S]}

and a chunk of k updates (a checkpoint interval) is ceil(k / B) calls of it, the host showing each block's metrics on
the progress bar as it comes back. ``n`` is a traced argument (the loop is a `while_loop`), so every block, including
a shorter last one, and any ``--checkpoint-every`` reuse the same executable: one compile per config and seed count.
With no host callback inside, the executable can be kept in JAX's persistent compilation cache
(`purejaxppo.runs.compile_cache`), so a second identical run does not compile again; and ``--quiet`` runs compute
exactly what visible runs compute. B is about 1% of the run's updates (at least 1): the bar moves a hundred times.

The update counter is in the state and every random key derives from it, so running chunks back to back, or
restoring a checkpoint between them, is bit-identical to one long run.
"""

from __future__ import annotations

import functools
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TextIO

import jax
import numpy as np
import jax.numpy as jnp
from tqdm.auto import tqdm

from purejaxppo.compiler import jit
from purejaxppo.config import PPOConfig
from purejaxppo.envs.pools import HostPool
from purejaxppo.training.train import TrainFunctions, make_train_functions, restart_envs

Metrics = dict[str, np.ndarray]
Sink = Callable[[Metrics], None]
PROGRESS_STEPS = 100  # the compiled program runs about num_updates / 100 updates per call


class ChunkRunner:
    """Runs `n` updates of a batch of seeds, streaming each update's metrics ``{name: [S]}`` to a sink.

    Attributes:
      config: the run's `PPOConfig` (closed over: its float leaves are compile-time constants).
      fns: its `TrainFunctions`.
      host_pool: the environment when it is a host pool (`purejaxppo.envs.pools`), else None: `restart` restarts it
        when a run resumes, and EnvPool's XLA route has the programs traced again before each init or restart.
    """

    def __init__(self, config: PPOConfig, fns: TrainFunctions | None = None):
        self.config = config
        self.fns = make_train_functions(config) if fns is None else fns
        self.block = max(1, -(-config.num_updates // PROGRESS_STEPS))  # updates per call of the compiled program
        self._lock = threading.Lock()
        self.host_pool = self.fns.setup.env if isinstance(self.fns.setup.env, HostPool) else None
        self._programs()

    def _programs(self) -> None:
        """(Re)create the jitted programs; new function objects, so they trace again when next called."""
        setup, config = self.fns.setup, self.config
        # plain jax.jit: `init` is small, and callers trace it (jax.eval_shape) where compiler options are refused
        self._init = jax.jit(jax.vmap(lambda key: self.fns.init(key, config)))
        self._restart = jax.jit(jax.vmap(lambda state: restart_envs(setup, state, config)))
        self._chunk = jit(functools.partial(self._chunk_fn), donate_argnums=0)

    def _fresh_host_pool(self) -> None:
        """Before the environments are reset: trace every program again when the host pool asks for it (EnvPool's
        XLA route, whose compiled programs stay bound to the pool they were traced with), so that the reset and the
        chunks step a fresh pool and the same key gives the same bits."""
        if self.host_pool is not None and self.host_pool.needs_retrace():
            self._programs()

    def _chunk_fn(self, states, num_updates):
        """``num_updates`` (<= `block`, traced) updates of every seed: ``(states, rows {name: [block, S]})``, row i
        the metrics of update i (plus "update", its number); the rows after ``num_updates`` are zeros."""
        config, update = self.config, self.fns.update

        def step(s):
            s, metrics = jax.vmap(lambda x: update(x, config))(s)
            return s, {**metrics, "update": s.updates_done}

        shapes = jax.eval_shape(step, states)[1]
        rows = {k: jnp.zeros((self.block, *v.shape), v.dtype) for k, v in shapes.items()}

        def body(i, carry):
            s, rows = carry
            s, metrics = step(s)
            return s, {k: rows[k].at[i].set(metrics[k]) for k in rows}

        return jax.lax.fori_loop(0, num_updates, body, (states, rows))

    def compile(self, states) -> tuple[Any, float]:
        """Compile the chunk program for `states` (donated) by running zero updates through it; the executable then
        serves every chunk, since the update count is traced.

        Returns:
          ``(states, seconds)``: the same states (use them, not the donated ones) and the seconds spent compiling,
          about 0 when this runner had compiled for this seed count already.
        """
        t0 = time.perf_counter()
        with self._lock:
            states, _ = self._chunk(states, np.int32(0))
            jax.block_until_ready(states)
        return states, time.perf_counter() - t0

    def init(self, keys: jax.Array):
        """The batched [S] initial states for typed keys [S]."""
        if self.host_pool is not None:
            self.host_pool.resume_at(0)
        self._fresh_host_pool()
        return self._init(keys)

    def restart(self, states, update: int):
        """Batched [S] states restored at update `update`, their environments restarted (`train.restart_envs`): what
        resuming does on a host pool, whose environments a checkpoint cannot hold."""
        if self.host_pool is not None:
            self.host_pool.resume_at(update)
        self._fresh_host_pool()
        return jax.block_until_ready(self._restart(states))

    def run(self, states, num_updates: int, sink: Sink | None = None) -> tuple[Any, Metrics]:
        """Run `num_updates` updates from `states` (donated: do not reuse them).

        Args:
          states: batched [S] `RunState`.
          num_updates: updates to run (any value >= 0; never recompiles).
          sink: also called with each update's metrics ``{name: [S]}`` (plus "update"), in order, as each block of
            updates comes back.

        Returns:
          ``(states, metrics)`` with metrics ``{name: [num_updates, S]}``, "update" holding each update's number.
        """
        rows: list[Metrics] = []
        with self._lock:  # one chunk at a time per runner
            while len(rows) < num_updates:
                n = min(self.block, num_updates - len(rows))
                states, block = self._chunk(states, np.int32(n))
                block = jax.device_get(block)
                for i in range(n):
                    rows.append({k: np.asarray(v[i]) for k, v in block.items()})
                    if sink is not None:
                        sink(rows[-1])
        return states, stack_metrics(rows)

    def compiled_count(self) -> int:
        """How many executables the chunk function holds (1 per seed count)."""
        return self._chunk._cache_size()


def stack_metrics(rows: list[Metrics]) -> Metrics:
    """``[{name: [S]}] * n -> {name: [n, S]}`` (empty input gives an empty dict)."""
    if not rows:
        return {}
    return {k: np.stack([r[k] for r in rows]) for k in rows[0]}


@functools.lru_cache(maxsize=8)
def chunk_runner(config: PPOConfig) -> ChunkRunner:
    """The (cached) runner for `config`: repeated runs in one process share its compiled program."""
    return ChunkRunner(config)


def device_description() -> str:
    """The backend and device the run's programs execute on (the default device), e.g. ``"gpu (NVIDIA H100 80GB
    HBM3)"`` or ``"cpu (TFRT_CPU_0, 1 of 2 devices)"``."""
    devices = jax.devices()
    device = devices[0]
    kind = getattr(device, "device_kind", "") or ""
    name = kind if kind and kind.lower() != device.platform else str(device)
    more = f", 1 of {len(devices)} devices" if len(devices) > 1 else ""
    return f"{jax.default_backend()} ({name}{more})"


# ---------------------------------------------------------------------------------------------------------- bar
def progress_enabled(quiet: bool, stream: TextIO | None = None) -> bool:
    """A bar is shown unless `quiet` or the stream (stderr) is not a terminal."""
    stream = sys.stderr if stream is None else stream
    return not quiet and hasattr(stream, "isatty") and stream.isatty()


def return_summary(returns: np.ndarray) -> str:
    """``"mean±std"`` of the seeds' latest episode returns [S], ignoring seeds with no finished episode."""
    finite = returns[np.isfinite(returns)]
    if finite.size == 0:
        return "n/a"
    if finite.size == 1:
        return f"{finite[0]:.4g}"
    return f"{finite.mean():.4g}±{finite.std():.2g}"


class ProgressBar:
    """A tqdm bar over environment steps (all seeds move together), with the latest mean return across seeds.

    Call it with each update's metrics ``{name: [S]}``; it shows the steps per seed, the rate in steps per second
    per seed (every seed runs this many at once: the total rate is num_seeds times it), ETA and ``return=mean±std``
    over seeds (each seed's return of the episodes that finished in its latest update that finished any), shown
    first, after the description, so a narrow terminal (80 columns) cuts the rate rather than the return. The bar
    opens at the first update, so compile time does not distort the rate and the ETA.
    """

    # The return and update (tqdm's postfix, ", return=... update=...") come right after the description, before the
    # bar: a line wider than the terminal loses its end, so at 80 columns the rate goes first, not the return.
    BAR_FORMAT = ("{desc}{postfix}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} steps per seed "
                  "[{elapsed}<{remaining}, {rate_fmt} per seed]")

    def __init__(self, total_steps: int, initial_steps: int = 0, enabled: bool = True,
                 desc: str = "train", file: TextIO | None = None, ncols: int | None = None):
        # ncols: a fixed line width; None follows the terminal's width as it changes
        self._options = {"total": total_steps, "unit": " steps", "unit_scale": True, "desc": desc,
                         "bar_format": self.BAR_FORMAT, "disable": not enabled, "dynamic_ncols": ncols is None,
                         "ncols": ncols, "file": file, "smoothing": 0.1, "leave": True}
        self._last = None  # each seed's latest known return, sized by the first update's metrics
        self._steps = initial_steps
        self.bar = None

    def __call__(self, metrics: Metrics) -> None:
        steps = int(np.asarray(metrics["env_steps"]).reshape(-1)[0])
        returns = np.asarray(metrics["episode_return"], np.float64).reshape(-1)
        if self._last is None:  # the seeds the metrics hold (in a several-process run, process 0's own)
            self._last = np.full(returns.shape, np.nan)
        self._last = np.where(np.isfinite(returns), returns, self._last)  # keep a seed's last known return
        postfix = f"return={return_summary(self._last)} update={int(np.asarray(metrics['update']).reshape(-1)[0])}"
        if self.bar is None:
            self.bar = tqdm(initial=steps, postfix=postfix, **self._options)
        else:
            self.bar.set_postfix_str(postfix, refresh=False)
            self.bar.update(max(steps - self._steps, 0))
        self._steps = steps

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
