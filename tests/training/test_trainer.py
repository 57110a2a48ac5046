"""PPOTrainer: the loss against an independent NumPy derivation, learning on a fixed batch, no recompile, bad input."""

from __future__ import annotations

import warnings

import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from purejaxppo import PPOConfig, PPOTrainer
from purejaxppo.training.trainer import as_trajectory

OBS_DIM, NUM_ACTIONS = 5, 3
TRACES: list[int] = []  # one entry per trace of TinyActorCritic.__call__


class TinyActorCritic(nnx.Module):
    """model(obs [B, OBS_DIM]) -> (log_probs [B, A], values [B])."""

    def __init__(self, rngs: nnx.Rngs, obs_dim: int = OBS_DIM, num_actions: int = NUM_ACTIONS):
        self.torso = nnx.Linear(obs_dim, 16, rngs=rngs)
        self.pi = nnx.Linear(16, num_actions, rngs=rngs)
        self.v = nnx.Linear(16, 1, rngs=rngs)

    def __call__(self, obs):
        TRACES.append(1)
        h = jnp.tanh(self.torso(obs))
        return jax.nn.log_softmax(self.pi(h)), self.v(h)[..., 0]


def make_trainer(config: PPOConfig, seed: int = 0, lr: float = 3e-4):
    model = TinyActorCritic(nnx.Rngs(seed))
    optimizer = nnx.Optimizer(model, optax.adam(lr), wrt=nnx.Param)
    return model, optimizer, PPOTrainer(model, optimizer, config)


def synthetic_batch(rng: np.random.Generator, T: int = 6, N: int = 2, model=None) -> dict:
    """A [T, N] trajectory; old log-probs/values are the model's, perturbed (so clipping is exercised)."""
    obs = rng.normal(size=(T, N, OBS_DIM)).astype(np.float32)
    actions = rng.integers(0, NUM_ACTIONS, (T, N))
    if model is not None:
        log_probs, values = (np.asarray(x) for x in model(obs.reshape(T * N, OBS_DIM)))
        taken = np.take_along_axis(log_probs, actions.reshape(-1, 1), 1)[:, 0].reshape(T, N)
        values = values.reshape(T, N)
    else:
        taken, values = np.full((T, N), np.log(1 / NUM_ACTIONS)), np.zeros((T, N))
    dones = np.zeros((T, N), bool)
    dones[2, 0] = dones[4 % T, N - 1] = True
    return {
        "observations": obs,
        "actions": actions,
        "rewards": rng.normal(size=(T, N)).astype(np.float32),
        "values": (values + 0.5 * rng.normal(size=(T, N))).astype(np.float32),
        "log_probs": (taken + 0.3 * rng.normal(size=(T, N))).astype(np.float32),
        "dones": dones,
    }


# ------------------------------------------------------------------------------------------ NumPy re-derivation
def numpy_gae(rewards, values, next_values, terminated, truncated, gamma, lam):
    advantages = np.zeros_like(rewards, dtype=np.float64)
    running = np.zeros(rewards.shape[1:])
    for t in reversed(range(rewards.shape[0])):
        done = np.maximum(terminated[t], truncated[t])
        delta = rewards[t] + gamma * (1.0 - terminated[t]) * next_values[t] - values[t]
        running = delta + gamma * lam * (1.0 - done) * running
        advantages[t] = running
    return advantages, advantages + values


def numpy_ppo_loss(log_probs_all, new_values, batch, advantages, targets, cfg):
    """PPO's terms from the model's outputs (log_probs_all [B, A], new_values [B]) on the flat batch."""
    actions = batch["actions"].reshape(-1)
    old_lp, old_v = batch["log_probs"].reshape(-1), batch["values"].reshape(-1)
    adv, tgt = advantages.reshape(-1), targets.reshape(-1)
    adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    log_ratio = log_probs_all[np.arange(len(actions)), actions] - old_lp
    ratio = np.exp(log_ratio)
    eps = cfg.clip_param
    policy_loss = -np.minimum(ratio * adv, np.clip(ratio, 1 - eps, 1 + eps) * adv).mean()
    clipped_v = old_v + np.clip(new_values - old_v, -eps, eps)
    value_loss = 0.5 * np.maximum((new_values - tgt) ** 2, (clipped_v - tgt) ** 2).mean()
    entropy = -(np.exp(log_probs_all) * log_probs_all).sum(-1).mean()
    return {
        "policy_loss": policy_loss,
        "value_loss": value_loss,
        "entropy": entropy,
        "approx_kl": ((ratio - 1) - log_ratio).mean(),
        "clip_fraction": (np.abs(ratio - 1) > eps).mean(),
    }


@pytest.mark.timeout(120)
@pytest.mark.parametrize("bootstrap", ["next_values_truncated", "last_values", "none"])
def test_loss_matches_numpy(bootstrap, strict_ranks):
    cfg = PPOConfig(update_epochs=1, num_minibatches=1, gamma=0.9, gae_lambda=0.8)
    model, optimizer, trainer = make_trainer(cfg)
    rng = np.random.default_rng(1)
    batch = synthetic_batch(rng, model=model)
    T, N = batch["rewards"].shape
    values = batch["values"].astype(np.float64)
    terminated, truncated = batch["dones"].copy(), np.zeros((T, N), bool)
    if bootstrap == "next_values_truncated":
        batch["truncated"] = np.zeros((T, N), bool)
        batch["truncated"][1, 1] = batch["truncated"][4, 1] = True  # one truncation alone, one on a done step
        batch["next_values"] = rng.normal(size=(T, N)).astype(np.float32)
        truncated = batch["truncated"]
        terminated = batch["dones"] & ~truncated
        next_values = batch["next_values"].astype(np.float64)
    else:
        last = rng.normal(size=(N,)).astype(np.float32) if bootstrap == "last_values" else np.zeros(N)
        if bootstrap == "last_values":
            batch["last_values"] = last
        next_values = np.concatenate([values[1:], last[None]], 0)
    advantages, targets = numpy_gae(batch["rewards"].astype(np.float64), values, next_values,
                                    terminated.astype(float), truncated.astype(float), cfg.gamma, cfg.gae_lambda)
    log_probs_all, new_values = (np.asarray(x, np.float64) for x in model(batch["observations"].reshape(T * N, -1)))
    expected = numpy_ppo_loss(log_probs_all, new_values, batch, advantages, targets, cfg)

    before = jax.tree.map(np.asarray, nnx.state(model, nnx.Param))
    metrics = trainer.train_step(batch)
    for name, value in expected.items():
        np.testing.assert_allclose(float(metrics[name]), value, rtol=2e-5, atol=1e-6, err_msg=name)
    assert 0.0 < float(expected["clip_fraction"]) < 1.0  # clipping was exercised
    assert np.isfinite(float(metrics["grad_norm"])) and float(metrics["grad_norm"]) > 0
    after = jax.tree.map(np.asarray, nnx.state(model, nnx.Param))
    assert any(not np.array_equal(a, b) for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(after)))
    assert int(optimizer.step[...]) == 1


def numpy_masked_log_softmax(log_probs_all, mask):
    x = np.where(mask, log_probs_all, -1e9)
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def masked_batch(rng: np.random.Generator, model, T: int = 6, N: int = 2) -> dict:
    """`synthetic_batch` with a random action mask (at least one legal action per step) and legal actions only."""
    batch = synthetic_batch(rng, T, N, model)
    mask = rng.random((T, N, NUM_ACTIONS)) < 0.6
    mask[..., 1] |= ~mask.any(-1)
    actions = np.array([[rng.choice(np.flatnonzero(mask[t, n])) for n in range(N)] for t in range(T)])
    log_probs_all = numpy_masked_log_softmax(np.asarray(model(batch["observations"].reshape(T * N, -1))[0]),
                                             mask.reshape(T * N, -1))
    taken = log_probs_all[np.arange(T * N), actions.reshape(-1)].reshape(T, N)
    # Perturbed, but still log-probabilities (<= 0): a step with one legal action has taken = 0.
    return {**batch, "actions": actions, "action_mask": mask,
            "log_probs": np.minimum(taken + 0.3 * rng.normal(size=(T, N)), 0.0).astype(np.float32)}


@pytest.mark.timeout(120)
def test_action_mask_matches_numpy(strict_ranks):
    """With "action_mask", the loss uses the masked log-softmax (illegal actions have probability 0, also in the
    entropy), as make_train's policy head does."""
    cfg = PPOConfig(update_epochs=1, num_minibatches=1, gamma=0.9, gae_lambda=0.8)
    model, _, trainer = make_trainer(cfg)
    batch = masked_batch(np.random.default_rng(12), model)
    assert not batch["action_mask"].all()  # some actions really are illegal
    T, N = batch["rewards"].shape
    values = batch["values"].astype(np.float64)
    next_values = np.concatenate([values[1:], np.zeros((1, N))], 0)
    advantages, targets = numpy_gae(batch["rewards"].astype(np.float64), values, next_values,
                                    batch["dones"].astype(float), np.zeros((T, N)), cfg.gamma, cfg.gae_lambda)
    log_probs_all, new_values = (np.asarray(x, np.float64) for x in model(batch["observations"].reshape(T * N, -1)))
    masked = numpy_masked_log_softmax(log_probs_all, batch["action_mask"].reshape(T * N, -1))
    expected = numpy_ppo_loss(masked, new_values, batch, advantages, targets, cfg)
    unmasked = numpy_ppo_loss(log_probs_all, new_values, batch, advantages, targets, cfg)
    assert abs(expected["entropy"] - unmasked["entropy"]) > 0.1  # the mask matters
    metrics = trainer.train_step(batch)
    for name, value in expected.items():
        np.testing.assert_allclose(float(metrics[name]), value, rtol=2e-5, atol=1e-6, err_msg=name)


@pytest.mark.timeout(120)
def test_final_values_alias_and_single_env_layout():
    """next_values, its alias final_values, and a 1-d [T] trajectory (N = 1) give the same update."""
    model, optimizer, trainer = make_trainer(PPOConfig(update_epochs=1, num_minibatches=2))
    start = (nnx.clone(nnx.state(model)), nnx.clone(nnx.state(optimizer)))
    batch = synthetic_batch(np.random.default_rng(3), T=8, N=1, model=model)
    next_values = np.random.default_rng(4).normal(size=(8, 1)).astype(np.float32)
    variants = [
        {**batch, "next_values": next_values},
        {**batch, "final_values": next_values},
        {**{k: v[:, 0] for k, v in batch.items()}, "next_values": next_values[:, 0]},
    ]
    results = []
    for variant in variants:
        nnx.update(model, start[0])
        nnx.update(optimizer, start[1])
        trainer.num_calls = 0  # the same shuffle key
        results.append(jax.tree.map(float, trainer.train_step(variant)))
    assert results[0] == results[1] == results[2]
    assert trainer.num_traces == 1  # [T] is laid out as [T, 1]: the same program


# ------------------------------------------------------------------------------------------------- learning
@pytest.mark.timeout(120)
def test_policy_moves_toward_advantage_weighted_actions():
    """A contextual bandit: one-step episodes, reward 1 for the state's best action. Repeated updates on batches
    with the same states and actions (old log-probs/values from the current model) make the best action likely."""
    num_states, samples = 4, 64
    cfg = PPOConfig(update_epochs=4, num_minibatches=4)
    model = TinyActorCritic(nnx.Rngs(0), obs_dim=num_states)
    trainer = PPOTrainer(model, nnx.Optimizer(model, optax.adam(1e-2), wrt=nnx.Param), cfg)
    rng = np.random.default_rng(0)
    states = rng.integers(0, num_states, samples)
    best = np.array([0, 2, 1, 2])
    obs = np.eye(num_states, dtype=np.float32)[states]
    actions = rng.integers(0, NUM_ACTIONS, samples)
    rewards = (actions == best[states]).astype(np.float32)

    def prob_best():
        log_probs, _ = model(np.eye(num_states, dtype=np.float32))
        return np.exp(np.asarray(log_probs)[np.arange(num_states), best])

    start = prob_best()
    for _ in range(15):
        log_probs, values = (np.asarray(x) for x in model(obs))
        trainer.train_step({
            "observations": obs, "actions": actions, "rewards": rewards, "values": values,
            "log_probs": log_probs[np.arange(samples), actions], "dones": np.ones(samples, bool),
        })
    end = prob_best()
    np.testing.assert_allclose(start, 1 / NUM_ACTIONS, atol=0.15)
    assert np.all(end > 0.8), (start, end)


# ------------------------------------------------------------------------------------------------ compilation
@pytest.mark.timeout(120)
def test_second_call_does_not_recompile():
    model, _, trainer = make_trainer(PPOConfig(update_epochs=2, num_minibatches=4))
    batch = synthetic_batch(np.random.default_rng(5), model=model)
    trainer.train_step(batch)
    assert trainer.num_traces == 1
    other = synthetic_batch(np.random.default_rng(6), model=model)  # new values, same shapes
    traces_after_first = len(TRACES)
    trainer.train_step(other)
    trainer.config = trainer.config.replace(clip_param=0.1, entropy_coeff=0.0)  # float leaves are traced
    trainer.train_step(batch)
    assert trainer.num_traces == 1
    assert len(TRACES) == traces_after_first  # the model was not traced again either
    trainer.train_step(synthetic_batch(np.random.default_rng(7), T=10, model=model))  # a new shape traces once
    assert trainer.num_traces == 2


# ----------------------------------------------------------------------------------------------------- bad input
def _bad_cases(T=6, N=2):
    nan = np.full((T, N), np.nan, np.float32)
    return {
        "missing dones": (lambda b: b.pop("dones"), r"missing key.*dones"),
        "unknown key": (lambda b: b.update(log_prob=b["log_probs"]), r"unknown key.*log_prob"),
        "short values": (lambda b: b.update(values=b["values"][:-1]), r"'values'.*shape.*\(6, 2\).*got \(5, 2\)"),
        "values [T,N,1]": (lambda b: b.update(values=b["values"][..., None]), r"'values'.*\(6, 2\).*got \(6, 2, 1\)"),
        "obs length": (lambda b: b.update(observations=b["observations"][:-1]), r"'observations'.*T=6, N=2"),
        "actions shape": (lambda b: b.update(actions=b["actions"][:, :1]), r"'actions'.*\(6, 2\).*got \(6, 1\)"),
        "rewards 3-d": (lambda b: b.update(rewards=b["rewards"][..., None]), r"'rewards'.*\[T\] or \[T, N\]"),
        "nan reward": (lambda b: b.update(rewards=nan), r"'rewards'.*non-finite"),
        "inf obs": (lambda b: b["observations"].__setitem__((0, 0, 0), np.inf), r"'observations'.*non-finite"),
        "nan log_probs": (lambda b: b.update(log_probs=nan), r"'log_probs'.*non-finite"),
        "dones not 0/1": (lambda b: b.update(dones=np.full((T, N), 2)), r"'dones'.*boolean"),
        "truncated w/o next_values": (lambda b: b.update(truncated=np.ones((T, N), bool)), r"'truncated'.*next_values"),
        "alias twice": (lambda b: b.update(next_values=b["values"], final_values=b["values"]), r"final_values"),
        "last_values shape": (lambda b: b.update(last_values=np.zeros((T, N))), r"'last_values'.*\[2\]"),
        "action out of range": (lambda b: b["actions"].__setitem__((0, 0), NUM_ACTIONS), r"'actions'.*\[0, 3\)"),
        "float actions": (lambda b: b.update(actions=np.zeros((T, N, 2), np.float32)), r"actions.*integers"),
        # int64 2**32 would wrap to action 0 in int32, and uint32 2**32 - 1 to -1
        "action beyond int32": (lambda b: b.update(actions=np.full((T, N), 2**32, np.int64)),
                                r"'actions'\] has values outside int32 \(e.g. 4294967296\)"),
        "uint32 action": (lambda b: b.update(actions=np.full((T, N), 2**32 - 1, np.uint32)),
                          r"'actions'\] has values outside int32 \(e.g. 4294967295\)"),
        "no environments": (lambda b: b.update(rewards=np.zeros((T, 0))), r"'rewards'.*T, N >= 1, got \(6, 0\)"),
        "string observations": (lambda b: b.update(observations=np.full(b["observations"].shape, "a")),
                                r"'observations'\] must be numeric, got dtype <U1"),
        "not a mapping": (None, r"mapping"),
        "mask shape": (lambda b: b.update(action_mask=np.ones((T, N), bool)), r"'action_mask'.*\[T=6, N=2, A\]"),
        "mask not 0/1": (lambda b: b.update(action_mask=np.full((T, N, NUM_ACTIONS), 2)), r"'action_mask'.*boolean"),
        "mask allows nothing": (lambda b: b.update(action_mask=np.zeros((T, N, NUM_ACTIONS), bool)),
                                r"'action_mask'\] allows no action at step \(0, 0\)"),
        "illegal action taken": (lambda b: b.update(actions=np.zeros((T, N), int),
                                                    action_mask=np.eye(NUM_ACTIONS, dtype=bool)[np.ones((T, N), int)]),
                                 r"takes action 0 at step \(0, 0\), which 'action_mask' marks illegal"),
        "mask width": (lambda b: b.update(action_mask=np.ones((T, N, NUM_ACTIONS + 1), bool)),
                       r"'action_mask'\] has 4 actions on its last axis, the model gives 3"),
        "log_probs above 0": (lambda b: b["log_probs"].__setitem__((0, 1), 0.5),
                              r"'log_probs'\] has 1 value\(s\) above 0 \(largest 0.5\), but the log-probability of a "
                              r"discrete action is <= 0"),
        "observation width": (lambda b: b.update(observations=b["observations"][..., :OBS_DIM - 1]),
                              r"trajectory\['observations'\] has shape \[B, \*obs_shape\] = \(12, 4\) but the model "
                              r"failed on it \(TypeError: dot_general.*\); the first nnx.Linear it defines \('torso'\) "
                              r"takes in_features=5, not 4$"),
    }


@pytest.fixture(scope="module")
def checked_trainer():
    model, _, trainer = make_trainer(PPOConfig(update_epochs=1, num_minibatches=2))
    return model, trainer, synthetic_batch(np.random.default_rng(8))


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", list(_bad_cases()))
def test_bad_input_raises(checked_trainer, case):
    model, trainer, good = checked_trainer
    mutate, pattern = _bad_cases()[case]
    batch = {k: np.array(v) for k, v in good.items()}
    before = jax.tree.map(np.asarray, nnx.state(model, nnx.Param))
    if mutate is None:
        batch = list(batch.items())
    else:
        mutate(batch)
    with pytest.raises(ValueError, match=pattern):
        trainer.train_step(batch)
    after = jax.tree.map(np.asarray, nnx.state(model, nnx.Param))
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(after)))


def _continuous_trainer():
    module = LinenActorCritic(num_actions=2, continuous=True)
    params = module.init(jax.random.key(0), np.zeros((1, OBS_DIM), np.float32))
    return PPOTrainer.from_apply(module.apply, params, optax.adam(1e-2), PPOConfig(update_epochs=1, num_minibatches=2))


@pytest.mark.timeout(120)
@pytest.mark.parametrize("key", ["rewards", "observations", "values", "log_probs", "actions"])
def test_float64_beyond_float32_range_raises(checked_trainer, key):
    """1e300 in a float64 array is finite but becomes inf in the cast to float32: it is named, nothing is updated and
    NumPy's overflow warning does not leak out (pytest's -W error would make it an error)."""
    T, N = 6, 2
    rng = np.random.default_rng(15)
    if key == "actions":  # continuous actions: a distribution-valued model
        trainer = _continuous_trainer()
        batch = {"observations": rng.normal(size=(T, N, OBS_DIM)), "actions": rng.normal(size=(T, N, 2)),
                 "rewards": rng.normal(size=(T, N)), "values": np.zeros((T, N)), "log_probs": np.full((T, N), -1.0),
                 "dones": np.zeros((T, N), bool)}
        params = lambda: trainer.params  # noqa: E731
    else:
        model, trainer, good = checked_trainer
        batch = {k: np.asarray(v, np.float64) if v.dtype == np.float32 else np.array(v) for k, v in good.items()}
        params = lambda: nnx.state(model, nnx.Param)  # noqa: E731
    batch = {k: np.array(v) for k, v in batch.items()}
    assert batch[key].dtype == np.float64
    batch[key].reshape(-1)[[0, 3, 5]] = [1e300, -1e300, 1e300]
    before = jax.tree.map(np.array, params())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match=rf"^trajectory\['{key}'\] has 3 value\(s\) outside float32's range "
                                             r"\(e.g. 1e\+300; float32 holds magnitudes up to 3.40282e\+38\)$"):
            trainer.train_step(batch)
    after = jax.tree.map(np.array, params())
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(after)))
    batch[key].reshape(-1)[[0, 3, 5]] = -1e30  # float32 holds it: accepted
    assert float(np.min(getattr(as_trajectory(batch), key))) == np.float32(-1e30)


def test_log_probs_of_discrete_actions_allow_rounding_only():
    """0 and float rounding above it (1e-7 <= LOG_PROB_TOLERANCE) are log-probabilities; continuous actions' log
    densities may be positive (a narrow Gaussian's is)."""
    good = synthetic_batch(np.random.default_rng(13), T=4, N=1)
    log_probs = np.array([[0.0], [1e-7], [-1.0], [-2.0]], np.float32)
    trajectory = as_trajectory({**good, "log_probs": log_probs})
    np.testing.assert_array_equal(trajectory.log_probs, log_probs)
    with pytest.raises(ValueError, match=r"'log_probs'\] has 2 value\(s\) above 0 \(largest 3\)"):
        as_trajectory({**good, "log_probs": np.array([[3.0], [1e-5], [-1.0], [0.0]], np.float32)})
    continuous = {**good, "actions": np.zeros((4, 1, 2), np.float32), "log_probs": np.full((4, 1), 2.5, np.float32)}
    assert float(as_trajectory(continuous).log_probs.max()) == 2.5


@pytest.mark.timeout(60)
def test_from_apply_model_failing_on_observations_names_them():
    """A functional model gives no layer to read the expected width from: the shape and the model's error are named."""
    module = LinenActorCritic(num_actions=NUM_ACTIONS)
    params = module.init(jax.random.key(0), np.zeros((1, OBS_DIM), np.float32))
    trainer = PPOTrainer.from_apply(module.apply, params, optax.adam(1e-3), PPOConfig(num_minibatches=2))
    batch = synthetic_batch(np.random.default_rng(14))
    batch["observations"] = batch["observations"][..., :3]
    with pytest.raises(ValueError, match=r"trajectory\['observations'\] has shape \[B, \*obs_shape\] = \(12, 3\) "
                                         r"but the model failed on it \(\w*Error: .*\(3, 16\)") as info:
        trainer.train_step(batch)
    assert "nnx.Linear" not in str(info.value)


@pytest.mark.timeout(60)
def test_minibatches_must_divide_samples():
    _, _, trainer = make_trainer(PPOConfig(update_epochs=1, num_minibatches=8))
    with pytest.raises(ValueError, match=r"num_minibatches=8.*T\*N = 12"):
        trainer.train_step(synthetic_batch(np.random.default_rng(9)))


class BadValuesModel(TinyActorCritic):
    def __call__(self, obs):
        log_probs, values = super().__call__(obs)
        return log_probs, values[:, None]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("seed", [2**32, -1, 1.5])
def test_a_seed_jax_would_wrap_or_refuse_is_refused(seed):
    model = TinyActorCritic(nnx.Rngs(0))  # key(2**32) would be key(0): silently seed 0's shuffles
    with pytest.raises(ValueError, match=r"seed must be an integer in \[0, 2\*\*32 - 1\]"):
        PPOTrainer(model, nnx.Optimizer(model, optax.adam(1e-3), wrt=nnx.Param), PPOConfig(), seed=seed)


def test_bad_model_output_raises():
    model = BadValuesModel(nnx.Rngs(0))
    trainer = PPOTrainer(model, nnx.Optimizer(model, optax.adam(1e-3), wrt=nnx.Param), PPOConfig())
    with pytest.raises(ValueError, match=r"values must have shape \[B\]"):
        trainer.train_step(synthetic_batch(np.random.default_rng(10), T=4))


# ------------------------------------------------------------------------------------------------ from_apply
class LinenActorCritic(nn.Module):
    num_actions: int
    continuous: bool = False

    @nn.compact
    def __call__(self, obs):
        h = nn.tanh(nn.Dense(16)(obs))
        out = nn.Dense(self.num_actions)(h)
        if self.continuous:
            log_std = self.param("log_std", nn.initializers.zeros, (self.num_actions,))
            pi = distrax.MultivariateNormalDiag(out, jnp.broadcast_to(jnp.exp(log_std), out.shape))
        else:
            pi = distrax.Categorical(logits=out)
        return pi, nn.Dense(1)(h)[..., 0]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("continuous", [False, True])
def test_from_apply_linen_distribution(continuous, strict_ranks):
    module = LinenActorCritic(num_actions=2, continuous=continuous)
    rng = np.random.default_rng(11)
    T, N = 8, 2
    obs = rng.normal(size=(T, N, OBS_DIM)).astype(np.float32)
    params = module.init(jax.random.key(0), obs[0])
    pi, values = module.apply(params, obs.reshape(T * N, -1))
    actions = np.asarray(pi.sample(seed=jax.random.key(1)))
    log_probs = np.asarray(pi.log_prob(actions))
    actions = actions.reshape((T, N, 2) if continuous else (T, N))
    trainer = PPOTrainer.from_apply(module.apply, params, optax.adam(1e-2), PPOConfig(num_minibatches=2))
    batch = {"observations": obs, "actions": actions, "rewards": rng.normal(size=(T, N)),
             "values": np.asarray(values).reshape(T, N), "log_probs": log_probs.reshape(T, N),
             "dones": np.zeros((T, N), bool)}
    metrics = trainer.train_step(batch)
    assert all(np.isfinite(float(v)) for v in metrics.values())
    changed = jax.tree.map(lambda a, b: not np.array_equal(a, b), params, trainer.params)
    assert any(jax.tree.leaves(changed))
    if not continuous:
        with pytest.raises(ValueError, match="actions"):  # float actions do not fit a Categorical's event shape
            trainer.train_step({**batch, "actions": np.zeros((T, N, 2), np.float32)})
        masked = trainer.train_step({**batch, "action_mask": np.ones((T, N, 2), bool)})  # a Categorical is masked too
        assert all(np.isfinite(float(v)) for v in masked.values())
    else:
        with pytest.raises(ValueError, match=r"'action_mask'\] needs discrete actions"):
            trainer.train_step({**batch, "action_mask": np.ones((T, N, 2), bool)})
