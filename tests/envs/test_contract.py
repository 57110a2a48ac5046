"""The contract every environment behind `make_env` keeps, checked on every suite of `SUITES` and on two gymnax ids
(CartPole-v1: Discrete actions; Pendulum-v1: Box actions), through `Env.reset`/`Env.step` as the pipeline calls them:

* shapes and dtypes: what `EnvSpec` says (obs float32 [N, *obs_shape], reward float32 [N], flags bool [N], the episode
  statistics, the action mask bool [N, num_actions] where the spec has one);
* the time limit: a short one given through env_kwargs (gymnax: env_params) truncates (terminated False) on the
  limit's step, again LIMIT steps later;
* auto-reset: on the ending step obs (and the action mask) is the reset the environment draws from that step's key,
  final_obs the pre-reset observation (the same run with a long limit shows it), the episode return and length the
  finished episode's;
* determinism: the same key gives the same bits.

Each case runs one jitted program (reset, then T steps by `lax.scan`), compiled once and run three times. A suite whose
extra is not installed is skipped, saying which extra. The comparisons with each suite's own episode handling are in
the suite's own test file.
"""

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejaxppo.envs import SUITES, Env, make_base_env, make_env, suite_of

LIMIT = 3  # the short time limit
LONG = 1000  # a limit no run reaches
T = 2 * LIMIT + 1  # two episodes end on the limit, one step of the third
N = 2  # environments side by side


def with_limit(params, limit: int):
    """`params` with the time limit `limit` (params hold it as ``max_steps_in_episode``)."""
    return params.replace(max_steps_in_episode=limit)


class Case(NamedTuple):
    env_name: str  # a small, fast environment of the suite
    env_kwargs: dict[str, Any]
    limit_kwarg: str | None  # the env_kwargs key of the time limit; None: a gymnax id, whose limit is in its params
    with_limit: Callable[[Any, int], Any] = with_limit  # params with another limit (built once, not once per limit)


CASES = {
    "CartPole-v1": Case("CartPole-v1", {}, None),
    "Pendulum-v1": Case("Pendulum-v1", {}, None),
    "brax:": Case("brax:inverted_pendulum", {"backend": "positional"}, "episode_length"),
    "craftax:": Case("craftax:Craftax-Classic-Symbolic-v1", {}, "max_timesteps",  # its limit is craftax's own param
                     lambda params, limit: params.replace(game=params.game.replace(max_timesteps=limit))),
    "jumanji:": Case("jumanji:Knapsack-v1", {}, "max_steps_in_episode"),
    "navix:": Case("navix:Navix-Empty-5x5-v0", {}, "max_steps"),
    "playground:": Case("playground:CartpoleBalance", {}, "episode_length"),
}
# Host pools (`Suite.on_host`): the environments run on the host, so their resets cannot be recomputed from a key; the
# same contract is checked on what the pipeline sees (`HostPool.reset`/`step`), with the time limit as an option of the
# pool. EnvPool resets on the step after the end (NEXT_STEP: that step is flagged invalid), Gymnasium on the same step.
HOST_CASES = {
    "envpool:": Case("envpool:CartPole-v1", {}, "max_episode_steps"),
    "gymnasium:": Case("gymnasium:CartPole-v1", {}, "max_episode_steps"),
}
IDS = [*(p for p in SUITES if not SUITES[p].on_host), "CartPole-v1", "Pendulum-v1"]
HOST_IDS = [p for p in SUITES if SUITES[p].on_host]


def test_a_discrete_observation_is_one_hot_float32_even_under_x64():
    """FrozenLake's observation is a Discrete(16) index, given to the policy one-hot. Under x64, `jax.nn.one_hot`'s
    default dtype is float64; the spec (and the run's statistics) say float32."""
    with jax.enable_x64(True):
        env = make_env("FrozenLake-misc")
        obs, _ = env.reset(jax.random.split(jax.random.key(0), 2))
        assert jnp.zeros(1).dtype == jnp.float64  # x64 really is on
    assert obs.dtype == env.spec.obs_dtype == np.float32 and obs.shape == (2, 16)
    np.testing.assert_array_equal(np.asarray(obs).sum(axis=1), [1.0, 1.0])


def test_every_suite_has_a_case():
    missing = sorted(set(SUITES) - set(CASES) - set(HOST_CASES))
    assert not missing, f"no contract case for the suite(s) {missing}: add a small environment of each to CASES"
    cases = {**CASES, **HOST_CASES}
    assert all(suite_of(cases[prefix].env_name)[1] is SUITES[prefix] for prefix in SUITES)
    assert all(SUITES[prefix].on_host for prefix in HOST_CASES) and not any(SUITES[p].on_host for p in CASES
                                                                            if p in SUITES)


def build(case: Case) -> tuple[Env, Any]:
    """The environment with the short limit, and the params of the long one."""
    if case.limit_kwarg is None:
        env = make_env(case.env_name, env_params=with_limit(make_base_env(case.env_name)[1], LIMIT))
    else:
        env = make_env(case.env_name, {**case.env_kwargs, case.limit_kwarg: LIMIT})
    return env, case.with_limit(env.params, LONG)


def reset_key(env: Env, key: jax.Array) -> jax.Array:
    """The key the environment resets from when a step with `key` ends an episode: a suite adapter's
    `split_step_key`, else gymnax's `Environment.step` (``key_step, key_reset = split(key)``)."""
    split = getattr(env.wrapped.unwrapped, "split_step_key", None)
    return split(key)[1] if split is not None else jax.random.split(key)[1]


def program(env: Env):
    """``run(key, params) -> (obs0, per-step outputs [T, N, ...])``, jitted. Actions keep episodes alive: zeros
    (Box), the first legal action (Discrete)."""
    spec = env.spec

    def action(env_t: Env, state):
        if not spec.discrete:
            return jnp.zeros((N, spec.num_actions), jnp.float32)
        mask = env_t.action_mask(state)
        return jnp.zeros((N,), jnp.int32) if mask is None else jnp.argmax(mask, -1).astype(jnp.int32)

    def run(key, params):
        env_t = Env(env.wrapped, params, spec)
        keys = jax.random.split(key, (T + 1, N))
        obs0, state = env_t.reset(keys[0])

        def step(state, step_keys):
            out = env_t.step(step_keys, state, action(env_t, state))
            reset_obs, reset_state = jax.vmap(lambda k: env.wrapped.reset(reset_key(env, k), params))(step_keys)
            masks = {"mask": env_t.action_mask(out.env_state), "reset_mask": env_t.action_mask(reset_state)}
            return out.env_state, {**out._asdict(), "env_state": None, "reset_obs": reset_obs, **masks}

        return obs0, jax.lax.scan(step, state, keys[1:])[1]

    return jax.jit(run)


class Runs(NamedTuple):
    env: Env
    obs0: np.ndarray
    short: dict  # the short limit
    again: dict  # the same, run again
    long: dict  # the long limit, same keys


@pytest.fixture(scope="module", params=IDS)
def runs(request) -> Runs:
    name = request.param
    if name in SUITES:
        extra = name[:-1]
        pytest.importorskip(SUITES[name].module,
                            reason=f"{extra} is not installed (optional extra: pip install 'purejaxppo[{extra}]')")
    env, long_params = build(CASES[name])
    run, key = program(env), jax.random.key(7)
    obs0, short = jax.tree.map(np.asarray, run(key, env.params))
    obs0_again, again = jax.tree.map(np.asarray, run(key, env.params))
    np.testing.assert_array_equal(obs0_again, obs0)
    _, long = jax.tree.map(np.asarray, run(key, long_params))
    return Runs(env, obs0, short, again, long)


def test_shapes_and_dtypes_follow_the_spec(runs):
    spec, out = runs.env.spec, runs.short
    assert spec.max_steps_in_episode == LIMIT
    assert runs.obs0.shape == (N, *spec.obs_shape) and runs.obs0.dtype == np.float32
    for name in ("obs", "final_obs", "reset_obs"):
        assert out[name].shape == (T, N, *spec.obs_shape) and out[name].dtype == np.float32, name
    for name, dtype in (("reward", np.float32), ("terminated", np.bool_), ("truncated", np.bool_),
                        ("episode_return", np.float32), ("episode_length", np.int32)):
        assert out[name].shape == (T, N) and out[name].dtype == dtype, name
    space = runs.env.wrapped.action_space(runs.env.params)
    if spec.discrete:
        assert int(space.n) == spec.num_actions
    else:
        assert tuple(space.shape) == (spec.num_actions,) and np.all(spec.action_low < spec.action_high)
    if spec.has_action_mask:
        assert out["mask"].shape == (T, N, spec.num_actions) and out["mask"].dtype == np.bool_
    else:
        assert out["mask"] is None


def test_time_limit_truncates_and_does_not_terminate(runs):
    out, ends = runs.short, np.arange(T) % LIMIT == LIMIT - 1
    np.testing.assert_array_equal(out["truncated"], np.broadcast_to(ends[:, None], (T, N)))
    assert not out["terminated"].any()
    assert not runs.long["truncated"].any() and not runs.long["terminated"].any()  # the premise of the comparisons


def test_auto_reset_final_observation_and_episode_statistics(runs):
    out, done = runs.short, runs.short["truncated"]
    # ending steps: obs (and the action mask) are the reset from that step's key, final_obs the observation before it
    np.testing.assert_array_equal(out["obs"][done], out["reset_obs"][done])
    if runs.env.spec.has_action_mask:
        np.testing.assert_array_equal(out["mask"][done], out["reset_mask"][done])
    np.testing.assert_array_equal(out["final_obs"][~done], out["obs"][~done])
    assert not np.array_equal(out["final_obs"][done], out["obs"][done])
    # the first episode is the long run's first LIMIT steps (same keys, no reset yet): the pre-reset obs is its obs
    np.testing.assert_array_equal(out["final_obs"][:LIMIT], runs.long["obs"][:LIMIT])
    np.testing.assert_array_equal(out["reward"][:LIMIT], runs.long["reward"][:LIMIT])
    # the statistics: this episode's running length and return, including the ending step's reward
    np.testing.assert_array_equal(out["episode_length"], np.broadcast_to(np.arange(T)[:, None] % LIMIT + 1, (T, N)))
    episode_returns = np.stack([out["reward"][t - t % LIMIT: t + 1].sum(0) for t in range(T)])
    np.testing.assert_allclose(out["episode_return"], episode_returns, rtol=1e-6, atol=1e-6)


def test_same_key_same_bits(runs):
    flat, again = jax.tree.leaves(runs.short), jax.tree.leaves(runs.again)
    assert len(flat) == len(again)
    for a, b in zip(flat, again, strict=True):
        np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------------------------------------------ host pools
H = 4 * LIMIT + 2  # steps of a host run: at least three episode ends, with NEXT_STEP's extra step after each


@pytest.fixture(scope="module", params=HOST_IDS)
def host_runs(request) -> Runs:
    name = request.param
    extra = name[:-1]
    pytest.importorskip(SUITES[name].module,
                        reason=f"{extra} is not installed (optional extra: pip install 'purejaxppo[{extra}]')")
    case = HOST_CASES[name]
    env = make_env(case.env_name, {**case.env_kwargs, case.limit_kwarg: LIMIT})

    @jax.jit
    def run(key):
        keys = jax.random.split(key, (H + 1, N))
        obs0, state = env.reset(keys[0])
        action = jnp.zeros((N,), jnp.int32) if env.spec.discrete else jnp.zeros((N, env.spec.num_actions))

        def step(state, step_keys):
            out = env.step(step_keys, state, action)
            return out.env_state, {**out._asdict(), "env_state": None}

        return obs0, jax.lax.scan(step, state, keys[1:])[1]

    key = jax.random.key(7)
    obs0, short = jax.tree.map(np.asarray, run(key))
    obs0_again, again = jax.tree.map(np.asarray, run(key))
    np.testing.assert_array_equal(obs0_again, obs0)
    return Runs(env, obs0, short, again, {})


def test_host_pool_shapes_and_dtypes_follow_the_spec(host_runs):
    spec, out = host_runs.env.spec, host_runs.short
    assert host_runs.obs0.shape == (N, *spec.obs_shape) and host_runs.obs0.dtype == np.float32
    for name in ("obs", "final_obs"):
        assert out[name].shape == (H, N, *spec.obs_shape) and out[name].dtype == np.float32, name
    for name, dtype in (("reward", np.float32), ("terminated", np.bool_), ("truncated", np.bool_),
                        ("episode_return", np.float32), ("episode_length", np.int32), ("valid", np.bool_),
                        ("episode_start", np.bool_)):
        assert out[name].shape == (H, N) and out[name].dtype == dtype, name


def test_host_pool_time_limit_truncates_and_auto_resets(host_runs):
    """Episodes of LIMIT valid steps, each ended by a truncation (never a termination); on a NEXT_STEP pool the step
    after each end is flagged invalid and starts the next episode, on a SAME_STEP pool the ending step's obs does."""
    spec, out = host_runs.env.spec, host_runs.short
    valid, done = out["valid"], out["truncated"]
    assert not out["terminated"].any() and not (done & ~valid).any()
    for env_i in range(N):
        lengths = np.diff(np.concatenate([[-1], np.flatnonzero(done[:, env_i])]))  # steps between ends
        if spec.next_step_reset:
            np.testing.assert_array_equal(valid[1:, env_i], ~done[:-1, env_i])  # the step after an end, only
            np.testing.assert_array_equal(out["episode_start"][:, env_i], ~valid[:, env_i])
            assert (lengths[1:] == LIMIT + 1).all() and lengths[0] == LIMIT  # LIMIT steps and the masked one
        else:
            assert valid[:, env_i].all()
            np.testing.assert_array_equal(out["episode_start"][:, env_i], done[:, env_i])
            assert (lengths == LIMIT).all()
        assert done[:, env_i].sum() >= 3
    np.testing.assert_array_equal(out["episode_length"][done], LIMIT)
    # the ending step's final_obs is the pre-reset observation: on a SAME_STEP pool obs already belongs to the next
    # episode, on a NEXT_STEP pool obs is that observation and the next (invalid) step brings the reset
    if spec.next_step_reset:
        np.testing.assert_array_equal(out["final_obs"][done], out["obs"][done])
    else:
        assert not np.array_equal(out["final_obs"][done], out["obs"][done])
        np.testing.assert_array_equal(out["final_obs"][~done], out["obs"][~done])
    # statistics: each episode's return is the sum of its valid rewards, the ending step's included
    for env_i in range(N):
        start = 0
        for t in np.flatnonzero(done[:, env_i]):
            expected = (out["reward"][start:t + 1, env_i] * valid[start:t + 1, env_i]).sum()
            np.testing.assert_allclose(out["episode_return"][t, env_i], expected, rtol=1e-6)
            start = t + 1


def test_host_pool_same_key_same_bits(host_runs):
    for a, b in zip(jax.tree.leaves(host_runs.short), jax.tree.leaves(host_runs.again), strict=True):
        np.testing.assert_array_equal(a, b)
