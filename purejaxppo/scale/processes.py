"""Several processes (hosts) as one run, through `jax.distributed`: start them, split a run's seeds between them,
gather what they computed, and hand process 0's values to all.

    start(HostSpec("10.0.0.1:1234", num_processes=2, process_id=0))   # in each process, before JAX computes anything
    mine = seed_slice(num_seeds=8)                                      # process 0: seeds 0-3, process 1: seeds 4-7
    metrics = gather_seeds(local_metrics, axis=1)                       # every process: all 8 seeds

Independent seeds need no communication while they train: each process trains its own contiguous block of the seeds
on its own device, and the processes meet only to gather each chunk's metrics (and the state for a checkpoint) and
to share a restored checkpoint. The coordination service watches every process: when one dies, the others stop with
an error once `heartbeat_timeout` seconds pass without its heartbeat, instead of waiting in a collective forever.
"""

from __future__ import annotations

import atexit
import dataclasses
import os
import sys
import threading
import time
from typing import Any

import jax
import numpy as np
from jax._src import distributed as jax_distributed  # the client: JAX has no public handle on it
from jax.experimental import multihost_utils

from purejaxppo.core.streams import is_key


@dataclasses.dataclass(frozen=True)
class HostSpec:
    """How this process joins the others (all None and `auto` False: a lone process).

    coordinator_address: ``host:port`` of process 0's coordination service.
    num_processes, process_id: the number of processes and this one's index.
    auto: let `jax.distributed.initialize` find all three itself (SLURM, Open MPI, a cloud TPU).
    heartbeat_timeout: seconds without a heartbeat after which a process counts as dead.
    """

    coordinator_address: str | None = None
    num_processes: int | None = None
    process_id: int | None = None
    auto: bool = False
    heartbeat_timeout: int = 60

    @property
    def wanted(self) -> bool:
        return self.auto or self.coordinator_address is not None


def check(spec: HostSpec) -> None:
    """ValueError naming the flag, when `spec` is incomplete or inconsistent."""
    given = {"coordinator-address": spec.coordinator_address, "num-processes": spec.num_processes,
             "process-id": spec.process_id}
    if spec.heartbeat_timeout < 1:
        raise ValueError(f"--heartbeat-timeout must be >= 1 second, got {spec.heartbeat_timeout}")
    if spec.auto:
        return
    if any(v is not None for v in given.values()) and any(v is None for v in given.values()):
        missing = ", ".join(f"--{k}" for k, v in given.items() if v is None)
        raise ValueError(f"several processes need --coordinator-address, --num-processes and --process-id together "
                         f"(missing {missing}), or --distributed to detect them")
    if spec.coordinator_address is None:
        return
    host, _, port = spec.coordinator_address.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"--coordinator-address must be HOST:PORT, got {spec.coordinator_address!r}")
    if spec.num_processes < 1:
        raise ValueError(f"--num-processes must be >= 1, got {spec.num_processes}")
    if not 0 <= spec.process_id < spec.num_processes:
        raise ValueError(f"--process-id must be in 0 .. {spec.num_processes - 1}, got {spec.process_id}")


def start(spec: HostSpec) -> bool:
    """Join the other processes (`jax.distributed.initialize`, CPU collectives over gloo); False for a lone process.
    Must run before JAX starts its backend."""
    check(spec)
    if not spec.wanted:
        return False
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        jax.distributed.initialize(spec.coordinator_address, spec.num_processes, spec.process_id,
                                   initialization_timeout=max(spec.heartbeat_timeout, 60),
                                   heartbeat_timeout_seconds=spec.heartbeat_timeout)
    except (ValueError, RuntimeError) as e:
        where = ("--distributed found no cluster to join (SLURM, Open MPI, a cloud TPU)" if spec.auto else
                 f"joining {spec.num_processes} processes at {spec.coordinator_address} failed")
        cause = str(e).splitlines()[0].rstrip(".")
        raise ValueError(f"{where}: {cause}; give --coordinator-address, --num-processes and --process-id"
                         + ("" if spec.auto else " again, the same address in every process")) from None
    client = getattr(jax_distributed.global_state, "client", None)
    if client is not None and jax.process_count() > 1:
        PeerWatch(client, spec.heartbeat_timeout).start()
    return True


EXIT_PEER_LOST = 4  # the exit status of a process whose run lost another process


class PeerWatch:
    """A daemon thread that stops this process with one error line (exit `EXIT_PEER_LOST`) when another process of
    the run stops showing signs of life for `timeout` / 2 seconds, or when the coordinator (process 0) cannot be
    reached. Each process counts up its own key in the coordination service's key-value store every second and
    watches the others' counts: a count that stops moving is a process that stopped (killed, crashed, its host gone).
    A process that exits normally says so first (``purejaxppo/done/<index>``, at exit, before JAX's own shutdown) and
    is no longer watched; its own watch then ends. Without this, XLA stops the process too, at the full `timeout`,
    with a fatal log and a C++ stack dump.
    """

    PERIOD_S = 1.0

    def __init__(self, client: Any, timeout: float):
        self.client, self.timeout = client, timeout
        self.me, self.n = jax.process_index(), jax.process_count()
        self.thread = threading.Thread(target=self._watch, name="purejaxppo-peer-watch", daemon=True)
        self.finished = threading.Event()

    def start(self) -> PeerWatch:
        self.thread.start()
        atexit.register(self.finish)  # registered after jax.distributed's shutdown, so it runs before it
        return self

    def finish(self) -> None:
        """This process is done: tell the others, and stop watching."""
        self.finished.set()
        try:
            self.client.key_value_set(f"purejaxppo/done/{self.me}", "1", allow_overwrite=True)
        except Exception:  # noqa: BLE001 - the coordinator is already gone: nobody is left to tell
            pass

    def _stop(self, why: str) -> None:
        print(f"error: process {self.me} of {self.n}: {why}; stopping. Process 0's checkpoints are kept: start every "
              "process again with --resume <run directory>", file=sys.stderr, flush=True)
        os._exit(EXIT_PEER_LOST)

    def _read(self, key: str) -> str | None:
        """The value under `key`, None when there is none yet."""
        try:
            return self.client.key_value_try_get(key)
        except Exception as e:  # noqa: BLE001 - jaxlib raises its own runtime error
            if "NOT_FOUND" in str(e):
                return None
            raise

    def _watch(self) -> None:
        seen = {p: (None, time.monotonic()) for p in range(self.n) if p != self.me}
        beat = 0
        while not self.finished.is_set():
            try:
                beat += 1
                self.client.key_value_set(f"purejaxppo/alive/{self.me}", str(beat), allow_overwrite=True)
                now = time.monotonic()
                for p, (last, since) in list(seen.items()):
                    value = self._read(f"purejaxppo/alive/{p}")
                    if value != last:
                        seen[p] = (value, now)
                    elif self._read(f"purejaxppo/done/{p}") is not None:
                        del seen[p]  # it finished normally
                    elif now - since > self.timeout / 2:
                        self._stop(f"process {p} has shown no sign of life for {now - since:.0f} s (it stopped, "
                                   "crashed or lost its network)")
            except Exception as e:  # noqa: BLE001 - the coordinator is gone, or its store failed
                if self.finished.is_set():
                    return
                self._stop(f"the coordinator (process 0) cannot be reached ({str(e).splitlines()[0][:200]})")
            time.sleep(self.PERIOD_S)


def count() -> int:
    return jax.process_count()


def is_writer() -> bool:
    """True in process 0, the only one that writes a run's files."""
    return jax.process_index() == 0


def seed_slice(num_seeds: int) -> slice:
    """This process's contiguous block of `num_seeds` seeds (they must divide evenly between the processes)."""
    if num_seeds % count():
        raise ValueError(f"--num-seeds {num_seeds} does not divide evenly between {count()} processes")
    per = num_seeds // count()
    return slice(jax.process_index() * per, (jax.process_index() + 1) * per)


def _host_leaves(tree: Any, axis: int | None = None) -> tuple[list[np.ndarray], list[Any], Any]:
    """``(host arrays, each leaf's key implementation or None, the tree's structure)``, `axis` (if any) moved first;
    typed PRNG keys as their raw data."""
    leaves, structure = jax.tree.flatten(tree)
    impls = [jax.random.key_impl(x) if is_key(x) else None for x in leaves]
    arrays = [np.asarray(jax.random.key_data(x) if impl else x) for x, impl in zip(leaves, impls)]
    arrays = [np.asarray(a if axis is None else np.moveaxis(a, axis, 0), order="C") for a in arrays]  # 0-d stays 0-d
    return arrays, impls, structure


def _as_bytes(arrays: list[np.ndarray]) -> np.ndarray:
    """The arrays' bytes end to end: one buffer, so that the processes exchange everything in one collective."""
    return np.concatenate([a.reshape(-1).view(np.uint8) for a in arrays]) if arrays else np.zeros(0, np.uint8)


def _from_bytes(buffer: np.ndarray, like: list[np.ndarray]) -> list[np.ndarray]:
    """`_as_bytes`'s inverse: arrays of `like`'s shapes and dtypes read from `buffer`."""
    out, offset = [], 0
    for a in like:
        out.append(buffer[offset:offset + a.nbytes].view(a.dtype).reshape(a.shape))
        offset += a.nbytes
    return out


def gather_seeds(tree: Any, axis: int = 0) -> Any:
    """Every process's block of the seed `axis` of `tree`, concatenated in process order, on every process (a
    collective: every process must call it). One exchange of bytes for the whole tree; typed PRNG keys travel as their
    raw data."""
    if count() == 1:
        return tree
    arrays, impls, structure = _host_leaves(tree, axis)
    every = np.asarray(multihost_utils.process_allgather(_as_bytes(arrays)), np.uint8).reshape(count(), -1)
    parts = [_from_bytes(row, arrays) for row in every]  # [process][leaf]
    leaves = []
    for i, impl in enumerate(impls):
        full = np.moveaxis(np.concatenate([p[i] for p in parts], axis=0), 0, axis)
        leaves.append(jax.random.wrap_key_data(full, impl=impl) if impl else full)
    return jax.tree.unflatten(structure, leaves)


def from_writer(tree: Any) -> Any:
    """Process 0's `tree` on every process (every process passes a tree of the same shapes; one collective)."""
    if count() == 1:
        return tree
    arrays, impls, structure = _host_leaves(tree)
    # (the broadcast is a sum over processes: it comes back widened from uint8)
    shared = np.asarray(multihost_utils.broadcast_one_to_all(_as_bytes(arrays), is_source=is_writer()), np.uint8)
    leaves = [jax.random.wrap_key_data(a, impl=impl) if impl else a
              for a, impl in zip(_from_bytes(shared.reshape(-1), arrays), impls)]
    return jax.tree.unflatten(structure, leaves)


def take_seeds(tree: Any, seeds: slice, axis: int = 0) -> Any:
    """The `seeds` block of the seed `axis` of every leaf."""
    return jax.tree.map(lambda x: x[(slice(None),) * axis + (seeds,)], tree)
