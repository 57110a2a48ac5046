"""SPO (policy_objective="spo"): its gradient against the hand derivation, and its trust region against PPO's clip."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from purejaxppo import PPOConfig, PPOTrainer, make_train, make_train_functions
from purejaxppo.core.losses import policy_loss_terms, ppo_loss


@pytest.mark.timeout(60)
def test_spo_gradient_matches_hand_derivation():
    """f(r) = r A - |A| / (2 eps) (r - 1)^2,  df/dr = A - |A| / eps (r - 1),  r = exp(logp - logp_old) so
    dr/dlogp = r; the loss is -mean f, so d loss / d logp_i = -(A_i - |A_i| / eps (r_i - 1)) r_i / B."""
    rng = np.random.default_rng(0)
    B, eps = 32, 0.2
    log_prob = jnp.asarray(rng.normal(scale=0.3, size=B), jnp.float32)
    old_log_prob = jnp.asarray(rng.normal(scale=0.3, size=B), jnp.float32)
    advantages = jnp.asarray(rng.normal(size=B), jnp.float32)

    grad = jax.grad(lambda lp: policy_loss_terms(lp - old_log_prob, advantages, eps, "spo").mean())(log_prob)
    r = np.exp(np.asarray(log_prob, np.float64) - np.asarray(old_log_prob, np.float64))
    A = np.asarray(advantages, np.float64)
    expected = -(A - np.abs(A) / eps * (r - 1.0)) * r / B
    np.testing.assert_allclose(np.asarray(grad), expected, rtol=1e-5, atol=1e-7)

    # The same through the whole objective (no advantage standardisation, value and entropy terms off).
    zeros = jnp.zeros(B)
    full = jax.grad(lambda lp: ppo_loss(lp, old_log_prob, advantages, zeros, zeros, zeros, zeros, clip_eps=eps,
                                        vf_coeff=0.0, entropy_coeff=0.0, normalize_advantages=False,
                                        objective="spo")[0])
    np.testing.assert_allclose(np.asarray(full(log_prob)), expected, rtol=1e-5, atol=1e-7)

    # Unlike PPO's clipped objective, SPO's gradient does not vanish outside the trust region: it pulls back.
    far = jnp.log(jnp.asarray([1.5, 0.5]))
    adv = jnp.asarray([1.0, -1.0])
    spo = jax.grad(lambda lp: policy_loss_terms(lp, adv, eps, "spo").sum())(far)
    ppo = jax.grad(lambda lp: policy_loss_terms(lp, adv, eps, "ppo").sum())(far)
    np.testing.assert_array_equal(np.asarray(ppo), [0.0, 0.0])
    assert spo[0] > 0 and spo[1] < 0  # minimising: r = 1.5 (A > 0) is pushed down, r = 0.5 (A < 0) up


S, A = 32, 4


class Tabular(nnx.Module):
    """One logit row per state (one-hot observations)."""

    def __init__(self, rngs: nnx.Rngs):
        self.pi = nnx.Linear(S, A, rngs=rngs)
        self.v = nnx.Linear(S, 1, rngs=rngs)

    def __call__(self, obs):
        return jax.nn.log_softmax(self.pi(obs)), self.v(obs)[..., 0]


def ratios_after_training(objective: str, eps: float = 0.2, calls: int = 2) -> np.ndarray:
    """|r - 1| per sample after `calls` train_steps on one fixed batch (one sample per state, A ~ N(0, 1)).

    Each call is 20 epochs x 4 minibatches = 80 Adam steps (lr 0.02) against the same old log-probabilities.
    """
    rng = np.random.default_rng(0)
    obs = np.eye(S, dtype=np.float32)
    actions = rng.integers(0, A, S)
    advantages = rng.normal(size=S).astype(np.float32)
    model = Tabular(nnx.Rngs(0))
    config = PPOConfig(policy_objective=objective, clip_param=eps, gamma=0.0, update_epochs=20, num_minibatches=4,
                       normalize_advantages=False, vf_coeff=0.0, entropy_coeff=0.0)
    trainer = PPOTrainer(model, nnx.Optimizer(model, optax.adam(0.02), wrt=nnx.Param), config)

    def taken_log_probs():
        return np.asarray(model(obs)[0])[np.arange(S), actions]

    old = taken_log_probs()
    batch = {"observations": obs, "actions": actions, "rewards": advantages,  # gamma = 0, V = 0: A_t = r_t
             "values": np.zeros(S, np.float32), "log_probs": old, "dones": np.ones(S, bool)}
    for _ in range(calls):
        trainer.train_step(batch)
    return np.abs(np.exp(taken_log_probs() - old) - 1.0)


@pytest.mark.timeout(120)
def test_spo_keeps_ratio_in_trust_region_where_ppo_escapes():
    """Measured (seed 0): PPO max |r-1| = 0.52 (2.6 eps), median 0.36; SPO max 0.2003, median 0.200.

    Asserted: PPO's ratio leaves the region (max |r-1| > 2 eps, median > 1.5 eps) while SPO's stays at its edge
    (max |r-1| <= 1.05 eps: the SPO objective's per-sample optimum is r = 1 + eps sign(A) exactly).
    """
    eps = 0.2
    ppo = ratios_after_training("ppo", eps)
    spo = ratios_after_training("spo", eps)
    assert ppo.max() > 2 * eps and np.median(ppo) > 1.5 * eps, ppo
    assert spo.max() <= 1.05 * eps, spo
    np.testing.assert_allclose(np.median(spo), eps, rtol=0.05)


@pytest.mark.timeout(120)
def test_spo_in_make_train():
    """SPO runs through make_train (two tiny updates on CartPole): finite metrics, the parameters move."""
    config = PPOConfig(num_envs=4, num_steps=16, total_timesteps=128, update_epochs=2, num_minibatches=2,
                       hidden_sizes=(16,), policy_objective="spo")
    out = make_train(config)(jax.random.key(0))
    metrics = jax.tree.map(np.asarray, out.metrics)
    for name in ("policy_loss", "value_loss", "entropy", "approx_kl", "grad_norm"):
        assert metrics[name].shape == (2,) and np.all(np.isfinite(metrics[name])), name
    start = make_train_functions(config).init(jax.random.key(0)).params
    moved = jax.tree.map(lambda a, b: not np.allclose(a, b), start, out.state.params)
    assert any(jax.tree.leaves(moved))
