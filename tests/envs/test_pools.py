"""Host environment pools (`purejaxppo.envs.pools`): EnvPool and Gymnasium stepped from inside the jitted program.

References are independent of the code under test: EnvPool's own NumPy API (same seeds, same actions: obs, rewards,
flags bit for bit, and each episode's return and length from its `elapsed_step`), Gymnasium's RecordEpisodeStatistics,
toy environments with known episodes, losses and statistics recomputed on the valid samples alone, and the seed
formula of `pools.base`'s docstring. The EnvPool tests skip without envpool; the Gymnasium ones always run.
"""

from __future__ import annotations

import traceback
import warnings

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from pool_toys import CountEnv  # registers the PoolsToy* ids

from purejaxppo import PPOConfig, evaluate, make_setup, make_train
from purejaxppo.core import streams
from purejaxppo.core.losses import ppo_loss
from purejaxppo.core.normalize import RunningStats, update_stats
from purejaxppo.envs import make_env
from purejaxppo.envs.pools import GymnasiumPool, HostEnvError, HostProgram, host_errors
from purejaxppo.training.batch import Samples, minibatch_loss, normalize_rollout, prepare_batch, to_samples
from purejaxppo.training.metrics import explained_variance
from purejaxppo.training.rollout import collect
from purejaxppo.training.train import init

warnings.filterwarnings("ignore", message=".*precision lowered.*")
KEY = jax.random.key(0)
SEED_LIMIT = 2**30


# ---------------------------------------------------------------------------------------------------- helpers
def run_pool(pool, num_envs: int, steps: int, action=0, key=KEY):
    """Reset `pool` with ``split(key, num_envs)`` and step it `steps` times with a constant action, in one jitted
    scan: ``(obs0 [N, ...], EnvStep [T, N] without env_state)`` as NumPy."""
    spec = pool.spec

    @jax.jit
    def run(key):
        obs, state = pool.reset(jax.random.split(key, num_envs))
        shape = (num_envs,) if spec.discrete else (num_envs, spec.num_actions)
        a = jnp.full(shape, action, jnp.int32 if spec.discrete else jnp.float32)

        def body(state, _):
            out = pool.step(None, state, a)
            return out.env_state, out._replace(env_state=None)

        return obs, jax.lax.scan(body, state, None, length=steps)[1]

    with host_errors(pool):
        return jax.tree.map(np.asarray, run(key))


def pool_seed(key, num_envs: int) -> int:
    """The documented seed of a pool reset with ``split(key, N)``: ``randint(keys[0], [0, 2**30))``."""
    return int(jax.random.randint(jax.random.split(key, num_envs)[0], (1,), 0, SEED_LIMIT, jnp.int32)[0])


def episodes(reward, done, lengths=None):
    """Per environment, the (return, length) of every episode ending in ``reward/done [T, N]`` (lengths: the logged
    or EnvPool's length at each done step)."""
    out = []
    for i in range(reward.shape[1]):
        out.append([(float(reward[t, i]), int(lengths[t, i])) for t in np.flatnonzero(done[:, i])])
    return out


def envpool_numpy(task, num_envs, seed, actions, **options):
    """EnvPool's own NumPy API with EnvPool's own seeding (env i gets seed + i) replaying ``actions [T, N, ...]``:
    obs0 and per step (obs, reward, terminated, truncated, elapsed_step), and each episode's (return, length)."""
    envpool = pytest.importorskip("envpool")
    env = envpool.make(task, env_type="gymnasium", num_envs=num_envs, batch_size=num_envs, seed=seed, **options)
    obs0, _ = env.reset()
    rows, totals, stats = [], np.zeros(num_envs), [[] for _ in range(num_envs)]
    for a in actions:
        a = np.asarray(a).astype(env.spec.action_array_spec["action"].dtype)
        obs, reward, terminated, truncated, info = env.step(a)
        rows.append((obs, reward, terminated, truncated, info["elapsed_step"]))
        for i in range(num_envs):
            if info["elapsed_step"][i] == 0:  # EnvPool's reset step: no transition
                continue
            totals[i] += reward[i]
            if terminated[i] or truncated[i]:
                stats[i].append((float(np.float32(totals[i])), int(info["elapsed_step"][i])))
                totals[i] = 0.0
    env.close()
    return obs0, [np.stack(x) for x in zip(*rows)], stats


def logged_episodes(step):
    done = step.terminated | step.truncated
    return [[(float(step.episode_return[t, i]), int(step.episode_length[t, i])) for t in np.flatnonzero(done[:, i])]
            for i in range(done.shape[1])]


def tree_leaves(tree):
    leaves = []
    for x in jax.tree.leaves(tree):
        leaves.append(np.asarray(jax.random.key_data(x) if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key) else x))
    return leaves


def same_bits(a, b) -> bool:
    return all(np.array_equal(x, y, equal_nan=True) for x, y in zip(tree_leaves(a), tree_leaves(b)))


TINY = dict(num_envs=4, num_steps=32, total_timesteps=4 * 32 * 3, num_minibatches=2, update_epochs=2)


# ------------------------------------------------------------------------------------ masking, on plain arrays
def test_weighted_loss_equals_the_loss_of_the_valid_samples_and_ignores_garbage():
    rng = np.random.default_rng(0)
    B = 64
    logp, old_logp = rng.normal(size=B) * 0.3 - 1, rng.normal(size=B) * 0.3 - 1
    adv, v, old_v, tgt, ent = (rng.normal(size=B) for _ in range(5))
    valid = rng.random(B) < 0.8
    f32 = lambda x: jnp.asarray(x, jnp.float32)  # noqa: E731
    kw = dict(clip_eps=0.2, vf_coeff=0.7, entropy_coeff=0.03, normalize_advantages=True, clip_value_loss=True)

    def loss(old_logp, adv, old_v, tgt, weights=None, subset=slice(None)):
        args = [f32(x[subset]) for x in (logp, old_logp, adv, v, old_v, tgt, ent)]
        return ppo_loss(*args, weights=None if weights is None else f32(weights), **kw)

    masked, info = loss(old_logp, adv, old_v, tgt, weights=valid)
    reference, ref_info = loss(old_logp, adv, old_v, tgt, subset=valid)  # the valid samples alone
    np.testing.assert_allclose(float(masked), float(reference), rtol=1e-5)
    for name in info._fields:
        np.testing.assert_allclose(float(getattr(info, name)), float(getattr(ref_info, name)), rtol=1e-5, atol=1e-7)
    assert 0 < float(ref_info.clip_fraction) < 1
    garbage = lambda x: np.where(valid, x, np.array([1e30, -np.inf, np.nan])[np.arange(B) % 3])  # noqa: E731
    dirty, dirty_info = loss(garbage(old_logp), garbage(adv), garbage(old_v), garbage(tgt), weights=valid)
    assert float(dirty) == float(masked) and same_bits(dirty_info, info)
    grad = lambda o, a, ov, t: jax.grad(  # noqa: E731
        lambda lp, vv: ppo_loss(lp, f32(o), f32(a), vv, f32(ov), f32(t), f32(ent), weights=f32(valid), **kw)[0],
        argnums=(0, 1))(f32(logp), f32(v))
    clean_grads, dirty_grads = grad(old_logp, adv, old_v, tgt), grad(*(garbage(x) for x in (old_logp, adv, old_v, tgt)))
    assert same_bits(clean_grads, dirty_grads) and all(np.all(np.asarray(g)[~valid] == 0) for g in clean_grads)


def test_weighted_statistics_equal_those_of_the_valid_samples():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(50, 3)).astype(np.float32) * 3 + 1
    valid = rng.random(50) < 0.7
    start = update_stats(RunningStats.create((3,)), jnp.asarray(rng.normal(size=(20, 3)), jnp.float32))
    masked = update_stats(start, jnp.asarray(np.where(valid[:, None], x, 1e6)), weights=jnp.asarray(valid))
    reference = update_stats(start, jnp.asarray(x[valid]))
    for a, b in zip(tree_leaves(masked), tree_leaves(reference)):
        np.testing.assert_allclose(a, b, rtol=1e-5)
    values, targets = (rng.normal(size=50).astype(np.float32) for _ in range(2))
    dirty_targets = jnp.asarray(np.where(valid, targets, np.nan))  # the masked targets: garbage
    ev = explained_variance(jnp.asarray(values), dirty_targets, where=jnp.asarray(valid))
    ref = 1 - np.var(targets[valid] - values[valid]) / np.var(targets[valid])
    np.testing.assert_allclose(float(ev), ref, rtol=1e-5)


# --------------------------------------------------------------------------------------------------- Gymnasium
def test_gymnasium_same_step_episodes_match_gymnasium_statistics():
    pool = GymnasiumPool(lambda: gymnasium.wrappers.RecordEpisodeStatistics(CountEnv(5)))
    _, step = run_pool(pool, 2, 12)
    done = step.terminated | step.truncated
    assert step.valid.all() and not pool.spec.next_step_reset
    np.testing.assert_array_equal(step.episode_start, done)
    np.testing.assert_array_equal(step.final_obs[done], np.full((done.sum(), 1), 5.0))  # the pre-reset obs
    np.testing.assert_array_equal(step.obs[done], np.zeros((done.sum(), 1)))  # SAME_STEP: the next episode's first
    for i, ours in enumerate(logged_episodes(step)):
        env = pool._envs.envs[i]
        assert ours == list(zip(map(float, env.return_queue), map(int, env.length_queue))) == [(15.0, 5)] * 2


def test_gymnasium_time_limit_is_truncation_with_the_final_observation():
    pool = make_env("gymnasium:PoolsToyLimit-v0")
    _, step = run_pool(pool, 2, 7)
    done = step.terminated | step.truncated
    assert step.truncated[done].all() and not step.terminated.any() and done.sum() == 4
    assert logged_episodes(step) == [[(6.0, 3), (6.0, 3)]] * 2 and (step.final_obs[done] == 3.0).all()


def test_gymnasium_errors_are_one_line_and_name_the_environment(caplog):
    with pytest.raises(ValueError, match=r"gymnasium env 'NoSuchEnv-v0' cannot be made: NameNotFound"):
        make_train(PPOConfig(env_name="gymnasium:NoSuchEnv-v0"))
    with pytest.raises(ValueError, match=r"PoolsToyDict-v0'.*observation space Dict is not supported.*Flatten"):
        make_train(PPOConfig(env_name="gymnasium:PoolsToyDict-v0"))
    with pytest.raises(ValueError, match="eval_every must be 0 for 'gymnasium:CartPole-v1', a host environment pool"):
        PPOConfig(env_name="gymnasium:CartPole-v1", eval_every=1)
    vector_env = gymnasium.vector.SyncVectorEnv([CountEnv] * 2)
    with pytest.raises(ValueError, match=r"a factory \(\) -> gymnasium.Env, not a built SyncVectorEnv: .*env_fns\[0\]"):
        GymnasiumPool(vector_env)
    with pytest.raises(ValueError, match=r"not an environment \(CountEnv\): it builds num_seeds x num_envs of them"):
        GymnasiumPool(gymnasium.wrappers.TimeLimit(CountEnv(), 3))
    assert GymnasiumPool(vector_env.env_fns[0]).spec.obs_shape == (1,)  # what the message says to pass
    pool = make_env("gymnasium:PoolsToyFail-v0")
    with pytest.raises(HostEnvError) as error:
        run_pool(pool, 2, 10)
    assert str(error.value) == ("gymnasium env 'PoolsToyFail-v0' raised in step (host step 7): "
                                "RuntimeError: CountEnv failed on purpose at its step 7")
    cause = error.value.__cause__  # the environment's own exception, its traceback ending where it raised
    assert isinstance(cause, RuntimeError) and traceback.extract_tb(cause.__traceback__)[-1].name == "step"
    assert not [r for r in caplog.records if "io_callback failed" in r.getMessage()]  # not logged by JAX as well
    _, step = run_pool(pool, 1, 3)  # a fresh vector env after the failure
    assert step.reward.tolist() == [[1.0], [2.0], [3.0]]

    def raw_run(key):  # what host_errors spares: the same failure without it is JAX's error, and logged
        _, state = pool.reset(jax.random.split(key, 2))
        step = lambda state, _: (pool.step(None, state, jnp.zeros((2,), jnp.int32)).env_state, None)  # noqa: E731
        return jax.lax.scan(step, state, None, length=10)[0]

    with pytest.raises(Exception, match="CpuCallback error") as raw:
        jax.block_until_ready(jax.jit(raw_run)(KEY))
    assert "Traceback" in str(raw.value) and [r for r in caplog.records if "io_callback failed" in r.getMessage()]


def test_a_stale_state_or_an_unbatched_reset_is_refused():
    pool = make_env("gymnasium:CartPole-v1")
    reset = jax.jit(lambda key: pool.reset(jax.random.split(key, 2))[1])
    step = jax.jit(lambda state: pool.step(None, state, jnp.zeros((2,), jnp.int32)).env_state)
    state = reset(KEY)
    with host_errors(pool):
        jax.block_until_ready(step(state))
    with pytest.raises(HostEnvError, match="stepped from a stale state .* a host pool holds one live state"), \
            host_errors(pool):
        jax.block_until_ready(step(state))

    def varying_action_same_key(a):  # vmapped over actions only: one reset of 2 environments, 2 x 2 actions
        _, state = pool.reset(jax.random.split(KEY, 2))
        return pool.step(None, state, jnp.full((2,), a, jnp.int32)).reward

    with pytest.raises(HostEnvError, match="reset with 2 environments but stepped with 4 actions: under jax.vmap"), \
            host_errors(pool):
        jax.block_until_ready(jax.jit(jax.vmap(varying_action_same_key))(jnp.arange(2)))


@pytest.fixture(scope="module")
def gym_cartpole():
    """A tiny gymnasium:CartPole-v1 run: the config, its pool, its train function, one seed's output."""
    config = PPOConfig(env_name="gymnasium:CartPole-v1", **TINY)
    pool = make_env(config.env_name)
    train = make_train(config, env=pool)
    return config, pool, train, train(KEY)


def test_gymnasium_same_key_same_bits_and_finite(gym_cartpole):
    _, _, train, out = gym_cartpole
    assert same_bits(out, train(KEY)) and not same_bits(out.metrics, train(jax.random.key(1)).metrics)
    assert all(np.isfinite(np.asarray(out.metrics[k])).all() for k in ("policy_loss", "value_loss", "entropy"))
    np.testing.assert_array_equal(out.metrics["episode_return"], out.metrics["episode_length"])  # CartPole: 1 per step


def test_gymnasium_two_seeds_in_one_program_equal_two_one_seed_runs(gym_cartpole):
    _, _, train, _ = gym_cartpole
    keys = jax.random.split(KEY, 2)
    both = jax.vmap(train)(keys)
    for s in range(2):
        one = train(keys[s])
        for name in ("episode_return", "episode_length", "episodes_finished"):
            np.testing.assert_array_equal(both.metrics[name][s], one.metrics[name], err_msg=name)
        np.testing.assert_allclose(both.metrics["value_loss"][s], one.metrics["value_loss"], rtol=1e-4)


def test_evaluation_uses_its_own_pool(gym_cartpole):
    config, pool, _, out = gym_cartpole
    state = out.state
    envs, steps = pool._envs, pool._steps
    returns = evaluate(config, state, jax.random.key(3), num_episodes=3, env=pool)
    assert pool._envs is envs and pool._steps == steps  # the training pool was neither reset nor stepped
    assert pool.for_evaluation() is not pool and pool.for_evaluation()._envs is not None
    np.testing.assert_array_equal(returns, evaluate(config, state, jax.random.key(3), num_episodes=3, env=pool))
    assert returns.shape == (3,) and (np.asarray(returns) >= 1).all()


@pytest.mark.slow
def test_the_command_line_trains_two_seeds(tmp_path):
    from purejaxppo import cli

    flags = ["--env", "gymnasium:CartPole-v1", "--num-seeds", "2", "--num-envs", "4", "--num-steps", "16",
             "--total-timesteps", "256", "--logdir", str(tmp_path / "run"), "--quiet"]
    assert cli.main(["train", *flags]) == 0
    assert (tmp_path / "run" / "metrics.jsonl").read_text().count("\n") >= 2
    assert cli.main(["eval", str(tmp_path / "run"), "--episodes", "2"]) == 0  # load_policy(...).evaluate's own pool


@pytest.mark.slow
def test_gymnasium_async_vector_env_equals_sync():
    pool = GymnasiumPool("CartPole-v1", vectorization="async")  # one spawned process per environment
    try:
        assert same_bits(run_pool(pool, 2, 30), run_pool(GymnasiumPool("CartPole-v1"), 2, 30))
    finally:
        pool.close()


# ------------------------------------------------------------------------------------------------------ EnvPool
@pytest.fixture(scope="module")
def envpool_rollout():
    """One real rollout of envpool:CartPole-v1 (callback route, time limit 20), prepared as a batch."""
    pytest.importorskip("envpool")
    config = PPOConfig(env_name="envpool:CartPole-v1", env_kwargs={"max_episode_steps": 20}, num_envs=4,
                       num_steps=64, total_timesteps=256, num_minibatches=1, normalize_observations=True,
                       normalize_rewards=True)
    setup = make_setup(config)

    @jax.jit
    def run(key):
        state = init(setup, key, config)
        transition, _ = collect(setup.policy, state.params, setup.env, config, state.obs_stats, state.rollout,
                                streams.stream(key, streams.ACTIONS, 0), streams.stream(key, streams.ENV, 0))
        batch, _, _ = prepare_batch(setup.policy, state.params, config, transition, (), state.obs_stats,
                                    state.reward_state)
        return state, transition, batch

    with host_errors(setup.env):
        state, transition, batch = run(KEY)
    return config, setup, state, jax.tree.map(np.asarray, transition), batch


def test_envpool_rollout_equals_envpool_numpy_api_and_its_statistics(envpool_rollout):
    _, _, _, tr, _ = envpool_rollout
    obs0, (obs, reward, terminated, truncated, elapsed), stats = envpool_numpy(
        "CartPole-v1", 4, pool_seed(streams.stream(KEY, streams.RESET), 4), tr.action, max_episode_steps=20)
    np.testing.assert_array_equal(tr.obs[0], obs0)
    np.testing.assert_array_equal(tr.obs[1:], obs[:-1])
    np.testing.assert_array_equal(tr.final_obs, obs)  # NEXT_STEP: the done step's obs is the pre-reset obs
    np.testing.assert_array_equal(tr.reward, reward)
    np.testing.assert_array_equal(tr.terminated, terminated)
    np.testing.assert_array_equal(tr.truncated, truncated)
    done = terminated | truncated
    assert logged_episodes(tr) == stats and sum(map(len, stats)) >= 8
    assert all(r == float(length) for env in stats for r, length in env)  # CartPole: return == length
    assert truncated.any() and terminated.any()  # both kinds of episode end (time limit 20)
    np.testing.assert_array_equal(tr.episode_length[done], elapsed[done])


def test_envpool_masks_exactly_the_step_after_each_done(envpool_rollout):
    _, _, _, tr, _ = envpool_rollout
    done = tr.terminated | tr.truncated
    after = np.zeros_like(done)
    after[1:] = done[:-1]
    np.testing.assert_array_equal(~tr.valid, after)
    np.testing.assert_array_equal(tr.reset[1:], after[:-1])  # the policy restarts on the step after the reset step
    assert (tr.reward[after] == 0).all() and not done[after].any() and after.sum() >= 8


def test_truncation_bootstraps_and_termination_does_not(envpool_rollout):
    config, setup, state, tr, batch = envpool_rollout
    rewards, _, _ = normalize_rollout(config, jax.tree.map(jnp.asarray, tr), state.obs_stats, state.reward_state)
    value = lambda o: np.asarray(setup.policy.heads(state.params, jnp.asarray(o), None)[1])  # noqa: E731
    obs, final_obs = (np.asarray(jnp.clip((x - state.obs_stats.mean) / jnp.sqrt(state.obs_stats.var + 1e-8), -10, 10))
                      for x in (tr.obs, tr.final_obs))
    gamma = config.gamma
    for kind, bootstrap in (("truncated", True), ("terminated", False)):
        t, i = np.nonzero(getattr(tr, kind))
        delta = np.asarray(rewards)[t, i] + gamma * bootstrap * value(final_obs[t, i]) - value(obs[t, i])
        np.testing.assert_allclose(np.asarray(batch.advantage)[t, i], delta, rtol=1e-4, atol=1e-5, err_msg=kind)


def test_masked_steps_never_enter_the_loss_or_the_statistics(envpool_rollout):
    config, setup, state, tr, batch = envpool_rollout
    samples = to_samples(batch, (), False)
    valid = np.asarray(samples.steps.valid)
    loss, info = minibatch_loss(state.params, setup.policy, samples, config)
    garbage = lambda x: jnp.where(valid, x, jnp.nan)  # noqa: E731
    dirty = samples.steps._replace(advantage=garbage(samples.steps.advantage), target=garbage(samples.steps.target),
                                   value=garbage(samples.steps.value), log_prob=garbage(samples.steps.log_prob))
    dirty_loss, dirty_info = minibatch_loss(state.params, setup.policy, Samples(dirty, ()), config)
    assert float(dirty_loss) == float(loss) and same_bits(dirty_info, info)
    alone = jax.tree.map(lambda x: x[valid], samples.steps._replace(valid=None))  # the valid samples only
    ref_loss, ref_info = minibatch_loss(state.params, setup.policy, Samples(alone, ()), config)
    np.testing.assert_allclose(float(loss), float(ref_loss), rtol=1e-5)
    for name in info._fields:
        np.testing.assert_allclose(float(getattr(info, name)), float(getattr(ref_info, name)), rtol=1e-4, atol=1e-6)
    _, obs_stats, _ = normalize_rollout(config, jax.tree.map(jnp.asarray, tr), state.obs_stats, state.reward_state)
    ref = update_stats(state.obs_stats, jnp.asarray(tr.obs[tr.valid]))
    for a, b in zip(tree_leaves(obs_stats), tree_leaves(ref)):
        np.testing.assert_allclose(a, b, rtol=1e-5)


@pytest.fixture(scope="module")
def envpool_cartpole():
    pytest.importorskip("envpool")
    config = PPOConfig(env_name="envpool:CartPole-v1", **TINY)
    train = make_train(config)
    return config, train, train(KEY)


def test_envpool_same_key_same_bits(envpool_cartpole):
    _, train, out = envpool_cartpole
    assert same_bits(out, train(KEY)) and not same_bits(out.metrics, train(jax.random.key(1)).metrics)
    np.testing.assert_array_equal(out.metrics["episode_return"], out.metrics["episode_length"])


def test_a_sweeps_cells_equal_one_seed_runs(envpool_cartpole):
    """settings x seeds, nested in one vmapped program over one pool, each cell equal to its lone run."""
    from purejaxppo import sweep

    config, train, _ = envpool_cartpole
    result = sweep(config, num_seeds=2, learning_rate=[3e-3, config.learning_rate])
    for s, key in enumerate(jax.random.split(KEY, 2)):
        one = train(key)
        for name in ("episode_return", "episode_length", "episodes_finished"):
            np.testing.assert_array_equal(result.metrics[name][1, s], one.metrics[name], err_msg=name)
        np.testing.assert_allclose(result.metrics["value_loss"][1, s], one.metrics["value_loss"], rtol=1e-4)


def test_envpool_errors_name_the_task_and_the_choices():
    pytest.importorskip("envpool")
    with pytest.raises(ValueError, match=r"EnvPool has no task 'CartPole-v9'\. Did you mean 'CartPole-v1'"):
        make_train(PPOConfig(env_name="envpool:CartPole-v9"))
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['max_steps'\] for 'envpool:CartPole-v1'.*max_episode"):
        make_env("envpool:CartPole-v1", {"max_steps": 5})
    with pytest.raises(ValueError, match=r"env_kwargs\['backend'\] must be one of \['callback', 'xla'\]"):
        make_env("envpool:CartPole-v1", {"backend": "fast"})
    with pytest.raises(ValueError, match="eval_every must be 0 for 'envpool:CartPole-v1'"):
        PPOConfig(env_name="envpool:CartPole-v1", eval_every=5)


def test_envpool_xla_route_matches_numpy_and_keeps_x64_off():
    pytest.importorskip("envpool")
    pool = make_env("envpool:HalfCheetah-v4", {"backend": "xla", "seed": 7})
    assert pool.x64 and pool.spec.next_step_reset
    obs0, step = run_pool(pool, 3, 20, action=0.25)  # 0.25: the same number in float32 and float64
    seed = int(np.random.SeedSequence([7, 3]).generate_state(1)[0]) % SEED_LIMIT  # the documented pool seed
    ref0, (obs, reward, *_), _ = envpool_numpy("HalfCheetah-v4", 3, seed, np.full((20, 3, 6), 0.25))
    assert step.obs.dtype == np.float32 and step.reward.dtype == np.float32
    np.testing.assert_array_equal(obs0, ref0.astype(np.float32))
    np.testing.assert_array_equal(step.obs, obs.astype(np.float32))
    np.testing.assert_array_equal(step.reward, reward.astype(np.float32))
    assert not jax.config.jax_enable_x64 and jnp.zeros(1).dtype == jnp.float32


def test_envpool_xla_program_gives_the_same_bits_on_a_second_call():
    """make_train's HostProgram traces again when the XLA pool has run, on a fresh pool with the same seeds; the
    compiled program itself continues the pool's random streams."""
    pytest.importorskip("envpool")
    pool = make_env("envpool:CartPole-v1", {"backend": "xla"})

    def run(key):
        _, state = pool.reset(jax.random.split(key, 4))

        def body(state, k):
            out = pool.step(None, state, jax.random.randint(k, (4,), 0, 2))
            return out.env_state, (out.obs, out.episode_length)

        return jax.lax.scan(body, state, jax.random.split(key, 40))[1]

    program = HostProgram(run, pool)
    first = program(KEY)
    assert same_bits(first, program(KEY)) and first[1].max() >= 8
    compiled = jax.jit(run)
    assert not same_bits(compiled(KEY), compiled(KEY))  # one compiled program: its pool's streams continue


# -------------------------------------------------------------------------------------------- done-when (slow)
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_envpool_cartpole_learns_as_gymnax_cartpole_does():
    pytest.importorskip("envpool")
    from purejaxppo.configs import load_config

    config = load_config("CartPole-v1").replace(env_name="envpool:CartPole-v1")
    out = make_train(config)(KEY)
    last = float(np.nanmean(np.asarray(out.metrics["episode_return"])[-10:]))
    returns = np.asarray(evaluate(config, out.state, jax.random.key(1), num_episodes=32))
    assert last >= 400, last
    assert returns.mean() >= 450, returns


@pytest.mark.slow
@pytest.mark.parametrize("env_name", ["envpool:HalfCheetah-v4", "envpool:Pong-v5", "gymnasium:Pendulum-v1"])
def test_a_few_updates_have_finite_losses(env_name):
    if env_name.startswith("envpool:"):
        pytest.importorskip("envpool")
    config = PPOConfig(env_name=env_name, num_envs=4, num_steps=32, total_timesteps=4 * 32 * 2, num_minibatches=2,
                       update_epochs=1)
    metrics = make_train(config)(KEY).metrics
    for name in ("policy_loss", "value_loss", "entropy", "approx_kl", "grad_norm"):
        assert np.isfinite(np.asarray(metrics[name])).all(), name
    assert not jax.config.jax_enable_x64
