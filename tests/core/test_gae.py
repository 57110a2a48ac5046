"""GAE against hand-computed values and rlax's implementation, across termination, truncation and auto-reset."""

import jax.numpy as jnp
import numpy as np
import pytest
import rlax

from purejaxppo.core.gae import gae_advantages

pytestmark = pytest.mark.usefixtures("strict_ranks")


def _gae(rewards, values, next_values, terminated, truncated, gamma, lam):
    f = lambda x: jnp.asarray(x, jnp.float32)  # noqa: E731
    b = lambda x: jnp.asarray(x, bool)  # noqa: E731
    adv, tgt = gae_advantages(f(rewards), f(values), f(next_values), b(terminated), b(truncated), gamma, lam)
    return np.asarray(adv), np.asarray(tgt)


def test_hand_computed_three_steps_no_done():
    # gamma=0.5, lambda=0.5: deltas d_t = r_t + 0.5 V(s'_t) - V(s_t); A_t = d_t + 0.25 A_{t+1}.
    r, v, nv = [1.0, 2.0, 3.0], [0.5, 1.0, 1.5], [1.0, 1.5, 2.0]
    d = [1 + 0.5 * 1.0 - 0.5, 2 + 0.5 * 1.5 - 1.0, 3 + 0.5 * 2.0 - 1.5]  # [1.0, 1.75, 2.5]
    a2 = d[2]
    a1 = d[1] + 0.25 * a2
    a0 = d[0] + 0.25 * a1
    adv, tgt = _gae(r, v, nv, [0, 0, 0], [0, 0, 0], 0.5, 0.5)
    np.testing.assert_allclose(adv, [a0, a1, a2], rtol=1e-6)
    np.testing.assert_allclose(tgt, np.array([a0, a1, a2]) + v, rtol=1e-6)


def test_termination_zeroes_bootstrap_and_stops_trace():
    # Step 1 terminates: delta_1 = r_1 - V(s_1) (its next value 99 is ignored), and A_1 does not see step 2.
    r, v, nv = [0.0, 1.0, 5.0], [0.2, 0.3, 0.4], [0.3, 99.0, 0.7]
    adv, _ = _gae(r, v, nv, [0, 1, 0], [0, 0, 0], 0.9, 0.8)
    a2 = 5.0 + 0.9 * 0.7 - 0.4
    a1 = 1.0 - 0.3
    a0 = (0.0 + 0.9 * 0.3 - 0.2) + 0.9 * 0.8 * a1
    np.testing.assert_allclose(adv, [a0, a1, a2], rtol=1e-6)


def test_truncation_bootstraps_from_final_observation_value():
    # Step 1 is cut by a time limit: delta_1 = r_1 + gamma V(final_obs_1) - V(s_1); the trace still stops there.
    r, v, nv = [0.0, 1.0, 5.0], [0.2, 0.3, 0.4], [0.3, 2.0, 0.7]
    adv, _ = _gae(r, v, nv, [0, 0, 0], [0, 1, 0], 0.9, 0.8)
    a2 = 5.0 + 0.9 * 0.7 - 0.4
    a1 = 1.0 + 0.9 * 2.0 - 0.3
    a0 = (0.0 + 0.9 * 0.3 - 0.2) + 0.9 * 0.8 * a1
    np.testing.assert_allclose(adv, [a0, a1, a2], rtol=1e-6)


def test_terminated_and_truncated_together_means_terminated():
    adv, _ = _gae([1.0], [0.5], [10.0], [1], [1], 0.9, 0.9)
    np.testing.assert_allclose(adv, [0.5], rtol=1e-6)


def _rlax_segment(r, v_seq, discount, lam):
    """rlax GAE for one episode segment: v_seq has len(r) + 1 values (the last is the bootstrap)."""
    return np.asarray(
        rlax.truncated_generalized_advantage_estimation(
            jnp.asarray(r, jnp.float32), jnp.asarray(discount, jnp.float32), lam, jnp.asarray(v_seq, jnp.float32)
        )
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_rlax_with_auto_resets_in_the_middle(seed):
    """A [T, N] rollout with terminations and truncations mid-rollout equals rlax run segment by segment."""
    rng = np.random.default_rng(seed)
    T, N, gamma, lam = 12, 3, 0.97, 0.9
    rewards = rng.normal(size=(T, N))
    values = rng.normal(size=(T, N))
    final_values = rng.normal(size=(T, N))  # V(final_obs_t): differs from V(obs_{t+1}) only where an episode ended
    last_value = rng.normal(size=(N,))
    terminated = rng.random((T, N)) < 0.15
    truncated = (rng.random((T, N)) < 0.15) & ~terminated
    done = terminated | truncated
    next_values = np.concatenate([values[1:], last_value[None]], axis=0)
    next_values = np.where(done, final_values, next_values)  # what the rollout feeds GAE

    adv, tgt = _gae(rewards, values, next_values, terminated, truncated, gamma, lam)

    expected = np.zeros((T, N))
    for n in range(N):
        start = 0
        for t in range(T):
            if done[t, n] or t == T - 1:
                seg = slice(start, t + 1)
                bootstrap = 0.0 if terminated[t, n] else next_values[t, n]
                v_seq = np.concatenate([values[seg, n], [bootstrap]])
                discount = np.full(t + 1 - start, gamma)
                expected[seg, n] = _rlax_segment(rewards[seg, n], v_seq, discount, lam)
                start = t + 1
    np.testing.assert_allclose(adv, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(tgt, expected + values, rtol=1e-5, atol=1e-5)


def test_no_leak_across_reset():
    """Changing anything after a done leaves the advantages before (and at) the done unchanged."""
    rng = np.random.default_rng(3)
    T = 8
    r, v, nv = rng.normal(size=T), rng.normal(size=T), rng.normal(size=T)
    term = np.zeros(T, bool)
    trunc = np.zeros(T, bool)
    trunc[3] = True
    a1, _ = _gae(r, v, nv, term, trunc, 0.99, 0.95)
    r2, v2, nv2 = r.copy(), v.copy(), nv.copy()
    r2[4:] += 10.0
    v2[4:] -= 3.0
    nv2[4:] *= 2.0
    a2, _ = _gae(r2, v2, nv2, term, trunc, 0.99, 0.95)
    np.testing.assert_array_equal(a1[:4], a2[:4])
    assert not np.allclose(a1[4:], a2[4:])


def test_shape_mismatch_is_a_clear_error():
    with pytest.raises(ValueError, match="equal shapes"):
        _gae([1.0, 2.0], [0.0], [0.0], [0], [0], 0.9, 0.9)
