"""Host environment pools: environments that run on the host (EnvPool's C++ pools, Gymnasium's vector envs), stepped
from inside the one jitted training program by host calls.

- `base`: `HostPool`, the `Env` they all are (reset/step traced as one host call per step, merged across vmapped
  seeds by `jax.custom_batching.custom_vmap`), the masked-step semantics of NEXT_STEP pools (`advance`), the seed
  derivation from the run key, `host_errors` (a host failure as one line) and `HostProgram` (make_train's wrapper).
- `envpool`: ``env_name="envpool:<task>"`` (the envpool extra), the callback route `EnvPoolTask`, EnvPool's XLA
  route `EnvPoolXLA` (``env_kwargs={"backend": "xla"}``) and its asynchronous mode `EnvPoolAsync`
  (``env_kwargs={"backend": "xla", "pool_envs": P}``).
- `gymnasium`: ``env_name="gymnasium:<id>"`` and `GymnasiumPool` for your own Gymnasium environment or factory.

May import: jax, numpy, gymnasium, `purejaxppo.extras`, `purejaxppo.envs.spec`, and envpool (only inside the functions
of `envpool`, as an optional extra); never registry, make, config or above.
"""

from purejaxppo.envs.pools.base import (
    HostEnvError,
    HostPool,
    HostProgram,
    PoolState,
    check_host_pool_placement,
    host_errors,
)
from purejaxppo.envs.pools.envpool import EnvPoolAsync, EnvPoolTask, EnvPoolXLA, envpool_check, make_envpool_env
from purejaxppo.envs.pools.gymnasium import GymnasiumPool, gymnasium_check, make_gymnasium_env

__all__ = [
    "EnvPoolAsync", "EnvPoolTask", "EnvPoolXLA", "GymnasiumPool", "HostEnvError", "HostPool", "HostProgram",
    "PoolState",
    "check_host_pool_placement", "envpool_check", "gymnasium_check", "host_errors", "make_envpool_env",
    "make_gymnasium_env",
]
