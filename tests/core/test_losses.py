"""The PPO loss against an independent NumPy re-derivation: `losses.ppo_loss` on arrays, and `batch.minibatch_loss`
through the flax network, the policy interface and distrax distributions."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejaxppo import PPOConfig
from purejaxppo.training.batch import Batch, Samples, minibatch_loss
from purejaxppo.core.losses import ppo_loss
from purejaxppo.models.networks import ActorCritic
from purejaxppo.core.optim import clip_by_global_norm
from purejaxppo.models.policies import actor_critic_policy


def numpy_ppo_loss(logp, old_logp, adv, v, old_v, tgt, ent, clip, vf, ent_coef, norm_adv, clip_v, objective="ppo"):
    if norm_adv:
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    ratio = np.exp(logp - old_logp)
    if objective == "ppo":
        pg = -np.minimum(ratio * adv, np.clip(ratio, 1 - clip, 1 + clip) * adv).mean()
    else:
        pg = -(ratio * adv - np.abs(adv) / (2 * clip) * (ratio - 1) ** 2).mean()
    vl = (v - tgt) ** 2
    if clip_v:
        vl = np.maximum(vl, (old_v + np.clip(v - old_v, -clip, clip) - tgt) ** 2)
    vl = 0.5 * vl.mean()
    e = ent.mean()
    kl = ((ratio - 1) - (logp - old_logp)).mean()
    cf = (np.abs(ratio - 1) > clip).mean()
    return pg + vf * vl - ent_coef * e, dict(policy_loss=pg, value_loss=vl, entropy=e, approx_kl=kl, clip_fraction=cf)


@pytest.mark.parametrize("norm_adv,clip_v,objective", [(True, True, "ppo"), (False, False, "ppo"), (True, True, "spo")])
def test_loss_terms_match_numpy(norm_adv, clip_v, objective, strict_ranks):
    rng = np.random.default_rng(0)
    B = 64
    logp, old_logp = rng.normal(size=B) * 0.3 - 1, rng.normal(size=B) * 0.3 - 1  # ratios well outside [0.8, 1.2]
    adv, v, old_v, tgt, ent = (rng.normal(size=B) for _ in range(5))
    args = [jnp.asarray(x, jnp.float32) for x in (logp, old_logp, adv, v, old_v, tgt, ent)]
    loss, info = ppo_loss(*args, clip_eps=0.2, vf_coeff=0.7, entropy_coeff=0.03, normalize_advantages=norm_adv,
                          clip_value_loss=clip_v, objective=objective)
    ref_loss, ref = numpy_ppo_loss(logp, old_logp, adv, v, old_v, tgt, ent, 0.2, 0.7, 0.03, norm_adv, clip_v, objective)
    np.testing.assert_allclose(float(loss), ref_loss, rtol=1e-5)
    for name, value in ref.items():
        np.testing.assert_allclose(float(getattr(info, name)), value, rtol=1e-5, atol=1e-7, err_msg=name)
    assert 0 < ref["clip_fraction"] < 1  # the batch really exercises clipping


def _log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def test_minibatch_loss_matches_numpy_with_masks():
    """Log-probs and entropy from the masked categorical equal a NumPy masked log-softmax."""
    config = PPOConfig(normalize_advantages=True)
    net = ActorCritic(discrete=True, num_actions=4, hidden_sizes=(8,))
    rng = np.random.default_rng(1)
    B = 32
    obs = rng.normal(size=(B, 3)).astype(np.float32)
    params = net.init(jax.random.key(0), obs)
    # make the policy head non-trivial so log-probs are not uniform
    params = jax.tree.map(lambda p: p + 0.3 * jax.random.normal(jax.random.key(2), p.shape), params)
    mask = rng.random((B, 4)) < 0.7
    mask[:, 0] = True
    action = np.array([rng.choice(np.flatnonzero(m)) for m in mask])
    batch = Batch(obs, np.zeros(B, bool), action, rng.normal(size=B).astype(np.float32) - 1.5,
                  rng.normal(size=B).astype(np.float32), rng.normal(size=B).astype(np.float32),
                  rng.normal(size=B).astype(np.float32), mask)
    loss, info = minibatch_loss(params, actor_critic_policy(net), Samples(batch, ()), config)

    # independent forward pass in NumPy from the raw parameters
    p = jax.tree.map(np.asarray, params)["params"]

    def mlp(torso, x):
        layer = torso["Dense_0"]
        return np.tanh(x @ layer["kernel"] + layer["bias"])

    logits = mlp(p["actor_torso"], obs) @ p["policy_head"]["Dense_0"]["kernel"] + p["policy_head"]["Dense_0"]["bias"]
    logits = np.where(mask, logits, -1e9)
    logp_all = _log_softmax(logits)
    logp = logp_all[np.arange(B), action]
    ent = -(np.exp(logp_all) * np.where(mask, logp_all, 0.0)).sum(-1)
    values = (mlp(p["critic_torso"], obs) @ p["value_head"]["kernel"] + p["value_head"]["bias"])[:, 0]
    ref_loss, ref = numpy_ppo_loss(logp, batch.log_prob, batch.advantage, values, batch.value, batch.target, ent,
                                   0.2, 0.5, 0.01, True, True)
    np.testing.assert_allclose(float(loss), ref_loss, rtol=1e-4)
    np.testing.assert_allclose(float(info.entropy), ref["entropy"], rtol=1e-4)


def test_clip_by_global_norm_is_global_not_elementwise(strict_ranks):
    grads = {"a": jnp.array([3.0, 0.0]), "b": jnp.array([[4.0]])}  # global norm 5
    clipped, norm = clip_by_global_norm(grads, 0.5)
    assert float(norm) == pytest.approx(5.0)
    leaves = jax.tree.leaves(clipped)
    assert float(jnp.sqrt(sum(jnp.sum(x**2) for x in leaves))) == pytest.approx(0.5, rel=1e-6)
    np.testing.assert_allclose(np.asarray(clipped["a"]), [0.3, 0.0], rtol=1e-6)  # direction kept
    same, _ = clip_by_global_norm(grads, 10.0)
    np.testing.assert_array_equal(np.asarray(same["b"]), np.asarray(grads["b"]))
