"""Gymnasium toy environments with known episodes, for the host pools' tests (`tests/envs/test_pools.py`,
`tests/envs/test_pool_runs.py`). Importing this module registers them, so they are also reachable by name from the
command line: ``--env gymnasium:pool_toys:PoolsToyFail-v0`` (gymnasium's "module:id" imports it; tests/ is on the
path, see pyproject.toml).

| id | environment |
|---|---|
| PoolsToyCount-v0 | `CountEnv(5)`: obs [t], reward t; every episode returns 15 in 5 steps |
| PoolsToyLimit-v0 | the same with a 3-step TimeLimit: every episode is truncated, returning 6 |
| PoolsToyFail-v0 | the same, raising on its 7th step in total (``fail_at``, a gymnasium.make keyword, moves it) |
| PoolsToyDict-v0 | a Dict observation space (not supported) |
"""

import gymnasium
import numpy as np


class CountEnv(gymnasium.Env):
    """obs [t], reward t at step t: an episode of `length` steps returns length * (length + 1) / 2. Raises on its
    `fail_at`-th step in total (counted across episodes) when given."""

    def __init__(self, length: int = 5, fail_at: int = -1):
        self.length, self.fail_at, self.t, self.total = length, fail_at, 0, 0
        self.observation_space = gymnasium.spaces.Box(0, np.inf, (1,), np.float32)
        self.action_space = gymnasium.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.array([0.0], np.float32), {}

    def step(self, action):
        self.total += 1
        if self.total == self.fail_at:
            raise RuntimeError(f"CountEnv failed on purpose at its step {self.total}")
        self.t += 1
        return np.array([self.t], np.float32), float(self.t), self.t >= self.length, False, {}


class DictObsEnv(CountEnv):
    def __init__(self):
        super().__init__()
        self.observation_space = gymnasium.spaces.Dict({"t": gymnasium.spaces.Box(0, np.inf, (1,), np.float32)})


for _id, _kwargs, _limit in (("PoolsToyCount-v0", {"length": 5}, None), ("PoolsToyLimit-v0", {"length": 5}, 3),
                             ("PoolsToyFail-v0", {"length": 5, "fail_at": 7}, None), ("PoolsToyDict-v0", {}, None)):
    if _id not in gymnasium.registry:
        gymnasium.register(_id, entry_point=DictObsEnv if "Dict" in _id else CountEnv, kwargs=_kwargs,
                           max_episode_steps=_limit)
