"""Named random streams: every random number of a run comes from ``fold_in(fold_in(key, STREAM), index)``.

No key is carried forward and split along the way, so a run resumed from a checkpoint, or one with evaluation switched
on, draws exactly the numbers an uninterrupted run draws. Per update u, a stream's key is ``stream(key, STREAM, u)``.

| stream | id | used for |
|---|---|---|
| network initialisation | 0 | `Policy.init` |
| action sampling | 1 | the rollout's Gumbel / normal noise |
| environment transitions | 2 | the rollout's per-environment step keys |
| evaluation | 999 | in-training greedy evaluation (a stream training never reads) |
| initial reset | 10_000 | the environments' first reset (per update u: a host pool's restart on resuming) |
| minibatch shuffle | 0xA11CE | the epochs' permutations (also `PPOTrainer`'s, per call) |
| population-based training | 0x9B7 | `pbt`'s initial hyperparameters (no index) and its exploit/explore (per generation) |
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

INIT = 0
ACTIONS = 1
ENV = 2
EVAL = 999
RESET = 10_000
SHUFFLE = 0xA11CE
PBT = 0x9B7


def is_key(x) -> bool:
    """True for a typed PRNG key array (``jax.random.key``), False for anything else (raw uint32 keys, numbers)."""
    return hasattr(x, "dtype") and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def check_seed(seed, what: str = "seed") -> None:
    """Refuse a seed `jax.random.key` would wrap (it keeps 32 bits without x64: 2**32 is seed 0 again)."""
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**32:
        raise ValueError(f"{what} must be an integer in [0, 2**32 - 1] (jax.random.key's 32-bit seed), got {seed!r}")


def check_key(key, what: str = "the key of a train function",
              hint: str = "; for several seeds, jax.vmap the train function over jax.random.split(key, n)") -> None:
    """Refuse anything but one PRNG key: a typed ``jax.random.key`` of shape () or a raw uint32[2] key."""
    typed = is_key(key)
    shape, dtype = jnp.shape(key), getattr(key, "dtype", type(key).__name__)
    if (typed and shape == ()) or (not typed and shape == (2,) and dtype == jnp.uint32):
        return
    raise ValueError(f"{what} must be one jax.random.key(seed) (or a raw uint32[2] key), got an array of shape "
                     f"{shape} and dtype {dtype}{hint}")


def stream(key: jax.Array, stream_id: int, index=None) -> jax.Array:
    """The key of a named random stream, optionally for one update (or call) `index`."""
    key = jax.random.fold_in(key, stream_id)
    return key if index is None else jax.random.fold_in(key, index)
