"""EnvPool's asynchronous mode (``env_kwargs={"backend": "xla", "pool_envs": P}``): each step answers the N = num_envs
environments of P that are ready first, and the rollout routes every action and result by environment id.

The references are the environments' own facts, whatever order the pool answers in: an environment's next
transition starts from the observation its previous one ended on; CartPole's episode return equals its length, and
its time limit truncates at exactly that length; an environment's first answer after the pool's reset completes
nothing. Skipped without envpool.
"""

from __future__ import annotations

import itertools
import warnings

import jax
import numpy as np
import pytest

from purejaxppo import PPOConfig, make_setup, make_train
from purejaxppo.core import streams
from purejaxppo.envs.pools import host_errors
from purejaxppo.training.batch import prepare_batch
from purejaxppo.training.rollout import collect
from purejaxppo.training.train import init

warnings.filterwarnings("ignore", message=".*precision lowered.*")
pytest.importorskip("envpool")
POOL, BATCH, LIMIT = 6, 4, 12
ASYNC = {"backend": "xla", "pool_envs": POOL, "max_episode_steps": LIMIT}


@pytest.fixture(scope="module")
def rollouts():
    """Two consecutive rollouts of async envpool:CartPole-v1 (P=6 environments, 4 answering per step), batched."""
    config = PPOConfig(env_name="envpool:CartPole-v1", env_kwargs=ASYNC, num_envs=BATCH, num_steps=48,
                       total_timesteps=BATCH * 48, num_minibatches=1, normalize_observations=True,
                       normalize_rewards=True)
    setup = make_setup(config)

    @jax.jit
    def run(key):
        state = init(setup, key, config)
        rollout, outs = state.rollout, []
        for u in range(2):
            transition, rollout = collect(setup.policy, state.params, setup.env, config, state.obs_stats, rollout,
                                          streams.stream(key, streams.ACTIONS, u), streams.stream(key, streams.ENV, u))
            batch, _, _ = prepare_batch(setup.policy, state.params, config, transition, (), state.obs_stats,
                                        state.reward_state)
            outs.append((transition, batch))
        return state.rollout.env_state.env_id, outs

    with host_errors(setup.env):
        first_ids, outs = run(jax.random.key(0))
    transition = jax.tree.map(lambda *x: np.concatenate([np.asarray(a) for a in x]), *(t for t, _ in outs))
    return np.asarray(first_ids), transition, [b for _, b in outs]


def per_env(transition, e):
    """Environment e's rows in time order (indices into the flattened [T*N] arrays)."""
    return np.flatnonzero(transition.env_id.reshape(-1) == e)


def test_each_step_answers_distinct_environments(rollouts):
    _, tr, _ = rollouts
    assert tr.env_id.shape == (96, BATCH) and tr.env_id.min() >= 0 and tr.env_id.max() < POOL
    assert all(len(set(row)) == BATCH for row in tr.env_id)
    assert len(np.unique(tr.env_id)) == POOL  # every environment answered


def test_each_environment_continues_from_where_its_last_step_ended(rollouts):
    _, tr, _ = rollouts
    flat = lambda x: x.reshape((-1, *x.shape[2:]))  # noqa: E731
    obs, final_obs, valid = flat(tr.obs), flat(tr.final_obs), flat(tr.valid)
    done = flat(tr.terminated | tr.truncated)
    linked = 0
    for e in range(POOL):
        rows = per_env(tr, e)
        for a, b in itertools.pairwise(rows):
            if valid[a] and not done[a]:  # the next transition starts where this one ended
                np.testing.assert_array_equal(obs[b], final_obs[a])
                assert valid[b]
                linked += 1
            if valid[a] and done[a]:  # the step after an episode's end is its reset: masked
                assert not valid[b]
    assert linked > 100


def test_first_answers_after_the_reset_complete_nothing(rollouts):
    first_ids, tr, _ = rollouts
    for e in range(POOL):
        first = per_env(tr, e)[0]
        assert tr.valid.reshape(-1)[first] == (e in first_ids)  # the reset's own answer went to the policy first


def test_episodes_are_cartpoles_own(rollouts):
    _, tr, _ = rollouts
    done = tr.terminated | tr.truncated
    returns, lengths = tr.episode_return[done], tr.episode_length[done]
    assert done.sum() >= 10
    np.testing.assert_array_equal(returns, lengths)  # CartPole: +1 per step
    assert lengths.max() <= LIMIT
    np.testing.assert_array_equal(tr.truncated[done], tr.episode_length[done] == LIMIT)
    assert not (done & ~tr.valid).any()


def test_the_batch_is_finite_and_masks_exactly_the_invalid_rows(rollouts):
    _, tr, batches = rollouts
    for batch in batches:
        assert np.isfinite(np.asarray(batch.advantage)).all() and np.isfinite(np.asarray(batch.target)).all()
    np.testing.assert_array_equal(np.concatenate([np.asarray(b.valid) for b in batches]), tr.valid)


def test_async_trains_one_seed_and_refuses_what_it_cannot_do():
    config = PPOConfig(env_name="envpool:CartPole-v1", env_kwargs=ASYNC, num_envs=BATCH, num_steps=16,
                       total_timesteps=BATCH * 16 * 3, num_minibatches=2)
    train = make_train(config)
    out = train(jax.random.key(1))
    assert np.asarray(out.metrics["nonfinite"]).sum() == 0 and out.state.reward_state.discounted_return.shape == (6,)
    with pytest.raises(ValueError, match=r"trains one seed per program.*num_seeds=1"):
        jax.vmap(train)(jax.random.split(jax.random.key(0), 2))
    with pytest.raises(ValueError, match=r"pool_envs'\] \(asynchronous mode\) needs backend 'xla'"):
        make_train(config.replace(env_kwargs={"pool_envs": POOL}))
    with pytest.raises(ValueError, match=r"recurrent.*asynchronous"):
        make_train(config.replace(network="gru"))
    with pytest.raises(ValueError, match=r"num_envs \(8\) must not exceed PPOConfig.env_kwargs\['pool_envs'\] \(6\)"):
        make_train(config.replace(num_envs=8, total_timesteps=8 * 16 * 3))(jax.random.key(1))


def test_a_second_reset_of_a_pool_that_ran_is_refused_not_corrupted():
    """After a program, P - N environments are still stepping the last actions sent: resetting that pool again (a
    compiled program called twice) would reset them under EnvPool's threads (Atari crashed so). It is refused in one
    line; make_train's function traces again, on a fresh pool, and runs."""
    from purejaxppo.envs import make_env
    from purejaxppo.envs.pools import HostEnvError, HostProgram

    pool = make_env("envpool:CartPole-v1", ASYNC)

    def run(key):
        _, state = pool.reset(jax.random.split(key, BATCH))
        return pool.step(None, state, jax.numpy.zeros((BATCH,), jax.numpy.int32)).reward

    compiled = jax.jit(run)
    with host_errors(pool):
        compiled(jax.random.key(0)).block_until_ready()
    with pytest.raises(HostEnvError, match=r"reset again by a program that already ran"), host_errors(pool):
        compiled(jax.random.key(0)).block_until_ready()
    program = HostProgram(run, pool)
    assert program(jax.random.key(0)).shape == (BATCH,) and program(jax.random.key(0)).shape == (BATCH,)
