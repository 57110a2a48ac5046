"""PPOConfig: defaults, validation errors that name the field and the allowed values, immutability, pytree split."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejaxppo import PPOConfig
from purejaxppo.config import HYPERPARAMETERS, MAX_TOTAL_TIMESTEPS
from purejaxppo.training.metrics import env_steps_done


def test_defaults_are_the_ones_ppo_users_know():
    c = PPOConfig()
    assert (c.gamma, c.gae_lambda, c.clip_param, c.vf_coeff, c.entropy_coeff, c.max_grad_norm) == (
        0.99, 0.95, 0.2, 0.5, 0.01, 0.5)
    assert (c.learning_rate, c.anneal_lr, c.num_envs, c.num_steps, c.total_timesteps) == (2.5e-4, True, 4, 128, 500_000)
    assert (c.update_epochs, c.num_minibatches, c.env_name) == (4, 4, "CartPole-v1")


def test_budget_rounding_is_stated():
    c = PPOConfig()
    assert c.batch_size == 512 and c.num_updates == 976 and c.timesteps_trained == 499_712
    assert PPOConfig(total_timesteps=5e5).total_timesteps == 500_000  # integral floats accepted


@pytest.mark.parametrize(
    "field,value,message",
    [
        ("learning_rate", -1.0, r"learning_rate must be in \(0, inf\)"),
        ("learning_rate", float("nan"), "learning_rate"),
        ("gamma", 1.5, r"gamma must be in \[0, 1\]"),
        ("gae_lambda", -0.1, r"gae_lambda must be in \[0, 1\]"),
        ("clip_param", 0.0, r"clip_param must be in \(0, inf\)"),
        ("entropy_coeff", -0.01, r"entropy_coeff must be in \[0, inf\)"),
        ("max_grad_norm", 0.0, "max_grad_norm"),
        ("num_envs", 0, "num_envs must be an integer >= 1"),
        ("num_steps", 2.5, "num_steps must be an integer >= 1"),
        ("num_minibatches", 3, r"num_minibatches must divide num_envs \* num_steps = 512"),
        ("total_timesteps", 100, "total_timesteps must be >= num_envs \\* num_steps = 512"),
        ("total_timesteps", 1e13, r"total_timesteps must be <= 2\*\*31 - 1 = 2147483647 per seed"),
        ("total_timesteps", 2**31, r"total_timesteps must be <= 2\*\*31 - 1 = 2147483647 per seed"),
        ("network", "transformer", r"network must be one of \['mlp', 'cnn', 'gru', 'nature_cnn'\]"),
        ("activation", "sigmoid", "activation must be one of"),
        ("policy_objective", "trpo", r"policy_objective must be one of \['ppo', 'spo'\]"),
        ("hidden_sizes", (64, 0), "hidden_sizes must be a non-empty sequence of positive integers"),
        ("anneal_lr", "yes", "anneal_lr must be True or False"),
        ("eval_every", -1, "eval_every must be an integer >= 0"),
        ("eval_every", 977, r"eval_every \(977\) is more than num_updates \(976\): no evaluation would run"),
        # float32 is what the run computes in: 1e39 would be inf (NaN losses), 1e-50 zero (no learning)
        ("learning_rate", 1e39, r"learning_rate must be in \(0, inf\) in float32.*got 1e\+39, which is inf"),
        ("vf_coeff", -1e39, r"vf_coeff must be in \[0, inf\), got -1e\+39"),
        ("entropy_coeff", 1e39, r"entropy_coeff must be in \[0, inf\) in float32"),
        ("learning_rate", 1e-50, r"learning_rate must be in \(0, inf\) in float32.*got 1e-50, which is 0 in float32"),
        ("learning_rate", 10**400, r"learning_rate must be in \(0, inf\), got an integer of 401 digits"),
        ("learning_rate", np.bool_(True), r"learning_rate must be a real number, got np.True_ \(dtype bool\)"),
        ("learning_rate", np.str_("0.1"), r"learning_rate must be a real number.*dtype <U3"),
        ("learning_rate", np.array([1e-3, 1e39]), r"learning_rate must be in \(0, inf\) in float32"),
    ],
)
def test_bad_values_name_the_field_and_the_allowed_range(field, value, message):
    with pytest.raises(ValueError, match=message):
        PPOConfig(**{field: value})


def test_numpy_and_float32_values_within_range_are_accepted():
    assert PPOConfig(learning_rate=np.float32(3e-4)).learning_rate == np.float32(3e-4)
    assert PPOConfig(learning_rate=1e-40).learning_rate == 1e-40  # a float32 subnormal, not zero
    assert PPOConfig(vf_coeff=3e38).vf_coeff == 3e38  # float32's largest is 3.4e38


def test_unknown_env_lists_the_registered_environments():
    with pytest.raises(ValueError, match="CartPole-v1, Pendulum-v1, Acrobot-v1") as info:
        PPOConfig(env_name="CartPol-v1")
    assert "'CartPol-v1' is not a registered gymnax environment" in str(info.value)


def test_unknown_field_in_replace_is_named():
    with pytest.raises(ValueError, match=r"no field\(s\) \['learnin_rate'\]"):
        PPOConfig().replace(learnin_rate=1e-3)


def test_frozen_and_does_not_mutate_the_callers_input():
    kwargs = {"map_name": None, "desc": ["SF", "HG"]}
    sizes = [32, 32]
    c = PPOConfig(env_name="FrozenLake-misc", env_kwargs=kwargs, hidden_sizes=sizes)
    assert kwargs == {"map_name": None, "desc": ["SF", "HG"]} and sizes == [32, 32]
    assert c.env_kwargs == (("desc", ["SF", "HG"]), ("map_name", None)) and c.hidden_sizes == (32, 32)
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.learning_rate = 1.0
    d = c.replace(learning_rate=1e-3)
    assert c.learning_rate == 2.5e-4 and d.learning_rate == 1e-3


def test_float_hyperparameters_are_leaves_and_sizes_are_static():
    c = PPOConfig()
    leaves, treedef = jax.tree_util.tree_flatten(c)
    assert len(leaves) == len(HYPERPARAMETERS)
    assert jax.tree_util.tree_structure(c.replace(learning_rate=1.0)) == treedef
    assert jax.tree_util.tree_structure(c.replace(num_envs=8)) != treedef
    # vmapping over a batch of configs traces the floats without re-validating them
    batch = jax.tree.map(lambda x: jnp.stack([jnp.asarray(x), jnp.asarray(x) * 2]), c)
    out = jax.vmap(lambda cfg: cfg.learning_rate * cfg.num_envs)(batch)
    assert out.shape == (2,) and float(out[1]) == pytest.approx(2 * 2.5e-4 * 4)


def test_round_trip_through_a_dict():
    c = PPOConfig(env_name="Catch-bsuite", env_kwargs={"rows": 8}, hidden_sizes=(8, 8), learning_rate=1e-3)
    assert PPOConfig.from_dict(c.to_dict()) == c


def test_total_timesteps_up_to_the_int32_limit_is_accepted():
    assert MAX_TOTAL_TIMESTEPS == 2**31 - 1
    c = PPOConfig(total_timesteps=MAX_TOTAL_TIMESTEPS)
    assert c.num_updates == (2**31 - 1) // 512 == 4_194_303 and c.timesteps_trained == 2_147_483_136


def test_adam_steps_past_the_int32_limit_are_refused():
    """One step per update is 2**31 - 1 updates: two epochs would count 2**32 - 2 Adam steps in int32."""
    small = dict(num_envs=1, num_steps=1, num_minibatches=1, total_timesteps=MAX_TOTAL_TIMESTEPS)
    assert PPOConfig(**small, update_epochs=1).num_updates == 2**31 - 1
    with pytest.raises(ValueError, match=r"num_updates \* update_epochs \* num_minibatches = 4294967294 Adam steps, "
                                         r"more than the 2\*\*31 - 1 = 2147483647"):
        PPOConfig(**small, update_epochs=2)


@pytest.mark.parametrize("batch", [(1, 1), (4, 128)])
def test_env_steps_metric_is_exact_at_the_limit(batch):
    """The "env_steps" metric of the last update is timesteps_trained exactly, in int32 (no wrap-around)."""
    num_envs, num_steps = batch
    c = PPOConfig(num_envs=num_envs, num_steps=num_steps, num_minibatches=1, update_epochs=1,
                  total_timesteps=MAX_TOTAL_TIMESTEPS)
    last = jax.jit(env_steps_done)(jnp.asarray(c.num_updates - 1, jnp.int32), c)
    assert last.dtype == jnp.int32 and int(last) == c.timesteps_trained
    assert c.timesteps_trained == (2**31 - 1 if batch == (1, 1) else 2_147_483_136)
