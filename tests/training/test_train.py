"""make_train end to end: determinism, evaluation that does not touch training, vmapped seeds, metrics, every env."""

import gymnax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejaxppo import METRIC_NAMES, PPOConfig, evaluate, make_train, make_train_functions
from purejaxppo.envs import NEEDS_NETWORK

SMALL = PPOConfig(num_envs=4, num_steps=16, total_timesteps=4 * 16 * 6, num_minibatches=2, update_epochs=2)


def _bits(tree):
    return [np.asarray(x).tobytes() for x in jax.tree.leaves(tree)]


@pytest.fixture(scope="module")
def small_run():
    return make_train(SMALL)(jax.random.key(42))


def test_metrics_are_one_value_per_update(small_run):
    assert set(small_run.metrics) == set(METRIC_NAMES)
    for name, value in small_run.metrics.items():
        assert value.shape == (SMALL.num_updates,), name
    np.testing.assert_array_equal(np.asarray(small_run.metrics["env_steps"]), SMALL.batch_size * np.arange(1, 7))
    lr = np.asarray(small_run.metrics["learning_rate"])
    np.testing.assert_allclose(lr, 2.5e-4 * (1 - np.arange(6) / 6), rtol=1e-6)  # linear annealing
    assert int(small_run.state.updates_done) == SMALL.num_updates


def test_episode_return_is_nan_not_zero_when_no_episode_finished():
    # 4 envs x 8 steps: a CartPole episode lasts at least 8 steps, so the first update finishes none.
    config = PPOConfig(num_envs=4, num_steps=4, total_timesteps=4 * 4 * 2, num_minibatches=1, update_epochs=1)
    out = make_train(config)(jax.random.key(0))
    assert int(out.metrics["episodes_finished"][0]) == 0
    assert np.isnan(float(out.metrics["episode_return"][0])) and np.isnan(float(out.metrics["episode_length"][0]))


def test_same_key_same_bits_across_compilations(small_run):
    again = make_train(SMALL)(jax.random.key(42))
    assert _bits(again.metrics) == _bits(small_run.metrics)
    assert _bits(again.state.params) == _bits(small_run.state.params)
    other = make_train(SMALL)(jax.random.key(43))
    assert _bits(other.state.params) != _bits(small_run.state.params)


def test_turning_evaluation_on_does_not_change_training(small_run):
    with_eval = make_train(SMALL.replace(eval_every=2, eval_episodes=3))(jax.random.key(42))
    eval_return = np.asarray(with_eval.metrics.pop("eval_return"))
    assert np.isnan(eval_return[[0, 2, 4]]).all() and np.isfinite(eval_return[[1, 3, 5]]).all()
    assert _bits(with_eval.metrics) == _bits(small_run.metrics)
    assert _bits(with_eval.state.params) == _bits(small_run.state.params)
    assert _bits(with_eval.state.opt_state) == _bits(small_run.state.opt_state)


def test_vmapped_seeds_match_lone_runs(small_run):
    keys = jnp.stack([jax.random.key(7), jax.random.key(42)])
    outs = jax.jit(jax.vmap(make_train(SMALL)))(keys)
    assert outs.metrics["policy_loss"].shape == (2, SMALL.num_updates)
    for name in ("episode_return", "value_loss", "entropy"):
        np.testing.assert_allclose(np.asarray(outs.metrics[name][1]), np.asarray(small_run.metrics[name]),
                                   rtol=2e-4, atol=1e-6, err_msg=name)
    assert not np.allclose(np.asarray(outs.metrics["value_loss"][0]), np.asarray(outs.metrics["value_loss"][1]))


def test_memory_does_not_grow_with_steps():
    """The run's outputs are the state plus one scalar per update per metric: nothing is [steps] or [steps, envs]."""
    short = jax.eval_shape(make_train(SMALL), jax.random.key(0))
    long = jax.eval_shape(make_train(SMALL.replace(num_steps=64, total_timesteps=4 * 64 * 60)), jax.random.key(0))
    for name in METRIC_NAMES:
        assert long.metrics[name].shape == (60,)
    size = lambda tree: sum(np.prod(x.shape) for x in jax.tree.leaves(tree))  # noqa: E731
    assert size(long.state) == size(short.state)


def test_evaluate_returns_per_episode_and_is_deterministic(small_run):
    r1 = evaluate(SMALL, small_run.state, jax.random.key(3), num_episodes=5)
    r2 = evaluate(SMALL, small_run.state, jax.random.key(3), num_episodes=5)
    assert r1.shape == (5,)
    np.testing.assert_array_equal(np.asarray(r1), np.asarray(r2))
    assert np.all(np.asarray(r1) >= 8)  # a CartPole episode lasts at least 8 steps
    with pytest.raises(ValueError, match="num_episodes must be an integer >= 1"):
        evaluate(SMALL, small_run.state, jax.random.key(3), num_episodes=0)


@pytest.mark.parametrize("env_name", [e for e in gymnax.registered_envs if e not in NEEDS_NETWORK])
def test_every_registered_environment_traces_through_one_update(env_name):
    """The whole update (rollout, GAE, epochs, metrics) traces for every gymnax environment; shapes only, no compile."""
    env, params = gymnax.make(env_name)
    obs_shape = env.observation_space(params).shape
    network = "cnn" if len(obs_shape) == 3 else "mlp"
    config = PPOConfig(env_name=env_name, network=network, num_envs=2, num_steps=4, total_timesteps=8,
                       num_minibatches=2, update_epochs=1, normalize_observations=True, normalize_rewards=True)
    fns = make_train_functions(config)
    state = jax.eval_shape(fns.init, jax.random.key(0))
    new_state, metrics = jax.eval_shape(fns.update, state)
    assert jax.tree_util.tree_structure(new_state) == jax.tree_util.tree_structure(state)
    assert all(m.shape == () for m in metrics.values())


def test_continuous_actions_and_normalisation_run():
    config = PPOConfig(env_name="Pendulum-v1", num_envs=4, num_steps=32, total_timesteps=4 * 32 * 3,
                       normalize_observations=True, normalize_rewards=True, num_minibatches=2, update_epochs=1)
    out = make_train(config)(jax.random.key(0))
    assert out.metrics["episode_return"].shape == (3,)
    assert np.all(np.isfinite(np.asarray(out.metrics["value_loss"])))
    assert float(out.state.obs_stats.count) > 4 * 32 * 3  # statistics live in the training state
    assert out.state.params["params"]["policy_head"]["log_std"].shape == (1,)


def test_cnn_on_minatar_runs():
    config = PPOConfig(env_name="Breakout-MinAtar", network="cnn", num_envs=4, num_steps=8, total_timesteps=64,
                       num_minibatches=2, update_epochs=1)
    out = make_train(config)(jax.random.key(0))
    assert np.isfinite(float(out.metrics["policy_loss"][-1]))
    assert out.state.params["params"]["actor_torso"]["Conv_0"]["kernel"].shape == (3, 3, 4, 16)


def test_init_state_is_typed_like_an_updated_one():
    """gymnax resets to weakly typed ints (Freeway's ``pos``, ``move_timer``) that its step makes strong. `init`
    makes them strong itself, so a jitted `update` compiles once rather than again on its second call."""
    config = PPOConfig(env_name="Freeway-MinAtar", num_envs=2, num_steps=4, total_timesteps=16, num_minibatches=1,
                       update_epochs=1, hidden_sizes=(8,))
    fns = make_train_functions(config)
    update = jax.jit(fns.update)
    first = fns.init(jax.random.key(0))
    second, _ = update(first)
    assert jax.tree.map(jax.typeof, first) == jax.tree.map(jax.typeof, second)
    update(second)
    assert update._cache_size() == 1


@pytest.mark.timeout(300)
@pytest.mark.slow
def test_cartpole_learns_with_the_default_config():
    config = PPOConfig()
    out = make_train(config)(jax.random.key(0))
    returns = np.asarray(out.metrics["episode_return"])
    assert np.nanmean(returns[:20]) < 60  # it started from scratch
    assert np.nanmean(returns[-20:]) > 450
    greedy = evaluate(config, out.state, jax.random.key(1), num_episodes=16)
    assert float(jnp.mean(greedy)) > 475


@pytest.mark.parametrize("key, shape", [
    (0, r"\(\) and dtype int32"),  # an int: JAX's own error is about key data deep in prng.py
    (0.5, r"\(\) and dtype float32"),
    (jax.random.split(jax.random.key(0), 3), r"\(3,\) and dtype key<fry>"),  # several seeds without vmap
])
def test_a_key_that_is_not_one_key_is_refused_when_traced(key, shape):
    with pytest.raises(ValueError, match=r"the key of a train function must be one jax.random.key\(seed\) \(or a raw "
                                         r"uint32\[2\] key\), got an array of shape " + shape + ".*jax.vmap"):
        jax.eval_shape(make_train(SMALL), key)


def test_a_batch_of_hyperparameters_without_vmap_is_refused():
    batch = SMALL.replace(learning_rate=np.array([1e-3, 2e-3]))  # accepted by PPOConfig: what sweep vmaps over
    with pytest.raises(ValueError, match=r"one value per hyperparameter; got arrays of shapes \{'learning_rate': "
                                         r"\(2,\)\}: for a batch of values, jax.vmap"):
        jax.eval_shape(make_train(SMALL), jax.random.key(0), batch)
    assert jax.eval_shape(make_train(SMALL), jax.random.PRNGKey(0)).metrics["policy_loss"].shape == (6,)  # raw key


def test_an_environment_with_the_old_step_api_gets_a_clear_error():
    from probes import BestAction

    class OldApi(BestAction):
        def step(self, key, state, action, params=None):  # gymnax < 1.0: (obs, state, reward, done, info)
            obs, state, reward, terminated, info = self.step_env(key, state, action, self.default_params)
            return obs, state, reward, terminated, info

    with pytest.raises(ValueError, match=r"must return \(obs, state, reward, terminated, truncated, info\)"):
        make_train(PPOConfig(), env=OldApi())
