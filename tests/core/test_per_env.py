"""GAE and the discounted return along each environment's own rows (`core.per_env`), against a plain-Python reference
that walks each environment's transitions in time order, and against time-major GAE when nothing interleaves."""

import jax.numpy as jnp
import numpy as np

from purejaxppo.core.gae import gae_advantages
from purejaxppo.core.per_env import env_major, per_env_gae, per_env_returns

GAMMA, LAM = 0.9, 0.8


def interleaved(seed: int, steps: int = 12, batch: int = 3, pool: int = 5):
    """A rollout [T, B] whose step t answers B distinct environments of P, at random, with random data."""
    rng = np.random.default_rng(seed)
    env_id = np.stack([rng.permutation(pool)[:batch] for _ in range(steps)]).astype(np.int32)
    data = {k: rng.normal(size=(steps, batch)).astype(np.float32) for k in ("rewards", "values", "next_values")}
    data["terminated"] = rng.random((steps, batch)) < 0.15
    data["truncated"] = ~data["terminated"] & (rng.random((steps, batch)) < 0.1)
    return env_id, data


def reference_gae(env_id, d):
    """Each environment's rows in time order; its last row in the rollout bootstraps from its own V(s')."""
    adv = np.zeros(env_id.shape)
    for e in np.unique(env_id):
        rows = [tuple(x) for x in np.argwhere(env_id == e)]  # time order (argwhere walks t first)
        following = 0.0
        for i, row in reversed(list(enumerate(rows))):
            last = i == len(rows) - 1
            term, trunc = d["terminated"][row], d["truncated"][row]
            delta = d["rewards"][row] + GAMMA * (1 - term) * d["next_values"][row] - d["values"][row]
            keep = 0.0 if (last or term or trunc) else GAMMA * LAM
            adv[row] = following = delta + keep * following
    return adv


def test_env_major_sorts_by_environment_then_time():
    env_id = np.array([[2, 0], [0, 1], [2, 1]], np.int32)
    order = env_major(jnp.asarray(env_id))
    # flat rows: 0:(t0,e2) 1:(t0,e0) 2:(t1,e0) 3:(t1,e1) 4:(t2,e2) 5:(t2,e1)
    np.testing.assert_array_equal(order.order, [1, 2, 3, 5, 0, 4])
    np.testing.assert_array_equal(order.env, [0, 0, 1, 1, 2, 2])
    np.testing.assert_array_equal(order.start, [1, 0, 1, 0, 1, 0])
    np.testing.assert_array_equal(order.end, [0, 1, 0, 1, 0, 1])


def test_per_env_gae_equals_a_walk_along_each_environment():
    for seed in range(3):
        env_id, d = interleaved(seed)
        adv, tgt = per_env_gae(env_major(jnp.asarray(env_id)), *(jnp.asarray(d[k]) for k in (
            "rewards", "values", "next_values", "terminated", "truncated")), GAMMA, LAM)
        np.testing.assert_allclose(adv, reference_gae(env_id, d), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(tgt, np.asarray(adv) + d["values"], rtol=1e-6)


def test_without_interleaving_it_is_time_major_gae():
    _, d = interleaved(7)
    env_id = np.broadcast_to(np.arange(3, dtype=np.int32), (12, 3))  # row b is always environment b
    args = [jnp.asarray(d[k]) for k in ("rewards", "values", "next_values", "terminated", "truncated")]
    adv, _ = per_env_gae(env_major(jnp.asarray(env_id)), *args, GAMMA, LAM)
    expected, _ = gae_advantages(*args, GAMMA, LAM)
    np.testing.assert_allclose(adv, expected, rtol=1e-5, atol=1e-6)


def test_per_env_returns_carry_each_environment_and_restart_on_done():
    env_id, d = interleaved(3)
    dones = d["terminated"] | d["truncated"]
    carried = np.array([0.5, -1.0, 2.0, 0.0, 3.0], np.float32)  # environment 4 may be absent: it keeps its return
    returns, after = per_env_returns(env_major(jnp.asarray(env_id)), jnp.asarray(d["rewards"]), jnp.asarray(dones),
                                     jnp.asarray(carried), GAMMA)
    expected, running = np.zeros(env_id.shape), carried.astype(np.float64).copy()
    for t in range(env_id.shape[0]):
        for b in range(env_id.shape[1]):
            e = env_id[t, b]
            running[e] = running[e] * GAMMA + d["rewards"][t, b]
            expected[t, b] = running[e]
            if dones[t, b]:
                running[e] = 0.0
    np.testing.assert_allclose(returns, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(after, running, rtol=1e-5, atol=1e-6)
