"""Sharding over 4 forced CPU devices (one subprocess): the sharded sweep, padding, data parallelism, and `pbt`'s
members split over the devices.

The subprocess runs every check once and reports each as "ok" or its error; the tests below assert them one by one.
What is promised, and checked here: a sharded sweep computes each cell exactly as a one-device run that compiles the
same per-device batch (bit for bit; XLA:CPU may round differently for a different batch *size*, so that is held
fixed), with no collective in the compiled program; a data-parallel run equals the one-device run within float
tolerance.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

DEVICES = 4

SCRIPT = textwrap.dedent(r"""
    import json, sys, time, traceback
    import jax, numpy as np
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
    from purejaxppo import PPOConfig, make_train, sweep
    from purejaxppo.scale.parallel import make_data_parallel_train

    assert len(jax.devices()) == 4, jax.devices()
    report, seconds = {}, {}

    def check(name):
        def run(fn):
            start = time.perf_counter()
            try:
                fn()
                report[name] = "ok"
            except BaseException:  # pytest.raises failures are BaseExceptions
                report[name] = traceback.format_exc(limit=3)
            seconds[name] = round(time.perf_counter() - start, 1)
        return run

    def leaves(tree):  # raw arrays, PRNG keys as their data
        return [np.asarray(jax.random.key_data(x) if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key) else x)
                for x in jax.tree.leaves(tree)]

    COLLECTIVES = ("all-reduce", "all-gather", "collective-permute", "all-to-all", "reduce-scatter")
    CONFIG = PPOConfig(num_envs=4, num_steps=16, total_timesteps=320, update_epochs=2, num_minibatches=2)
    LRS = [1e-4, 3e-4, 1e-3]
    one_device = Mesh(np.array(jax.devices()[:1]), ("batch",))
    # 3 settings x 2 seeds = 6 cells on 4 devices: padded to 8, two cells per device (device 3 holds only padding)
    start = time.perf_counter()
    sharded = sweep(CONFIG, num_seeds=2, learning_rate=LRS, keep_state=True)
    seconds["sharded_sweep"] = round(time.perf_counter() - start, 1)

    @check("sharded_layout")
    def _():
        assert sharded.metrics["episode_return"].shape == (3, 2, CONFIG.num_updates)
        assert sharded.state.updates_done.shape == (3, 2) and (sharded.state.updates_done == CONFIG.num_updates).all()
        assert np.isfinite(sharded.metrics["policy_loss"]).all()

    @check("sharded_equals_one_device_bitwise")
    def _():
        # each device's two cells (one learning rate, two seeds) against one device running the same two cells
        for i, lr in enumerate(LRS):
            alone = sweep(CONFIG, num_seeds=2, learning_rate=[lr], keep_state=True, mesh=one_device)
            for name in alone.metrics:
                np.testing.assert_array_equal(sharded.metrics[name][i], alone.metrics[name][0], err_msg=name)
            for a, b in zip(leaves(jax.tree.map(lambda x: x[i], sharded.state)),
                            leaves(jax.tree.map(lambda x: x[0], alone.state))):
                np.testing.assert_array_equal(a, b)

    @check("program_is_sharded_without_collectives")
    def _():
        sweep_module = sys.modules["purejaxppo.scale.sweeps"]
        mesh = sweep_module.default_mesh()
        program = sweep_module._program(CONFIG, ("learning_rate",), mesh, True, None, None, None)
        sharding = NamedSharding(mesh, P(mesh.axis_names))
        keys = jax.random.key_data(jax.random.split(jax.random.key(0), 8))
        lowered = program.lower(jax.device_put(keys, sharding),
                                {"learning_rate": jax.device_put(np.full(8, 3e-4, np.float32), sharding)})
        compiled = lowered.compile()
        text = compiled.as_text()
        assert not [c for c in COLLECTIVES if c in text], [c for c in COLLECTIVES if c in text]
        out = jax.tree.leaves(compiled.output_shardings)
        assert all(s.num_devices == 4 and not s.is_fully_replicated for s in out), out[:2]

    DP = PPOConfig(num_envs=8, num_steps=16, total_timesteps=8 * 16 * 4, update_epochs=2, num_minibatches=1,
                   normalize_observations=True, normalize_rewards=True)
    key = jax.random.key(1)
    start = time.perf_counter()
    one = make_train(DP)(key)
    seconds["one_device_run"] = round(time.perf_counter() - start, 1)
    FLOATS = ("policy_loss", "value_loss", "entropy", "approx_kl", "explained_variance", "grad_norm")

    def assert_close_runs(a, b):
        for name in a.metrics:
            x, y = np.asarray(a.metrics[name]), np.asarray(b.metrics[name])
            if name in FLOATS:
                np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-5, err_msg=name)
            else:
                np.testing.assert_array_equal(x, y, err_msg=name)
        for x, y in zip(jax.tree.leaves(a.state.params), jax.tree.leaves(b.state.params)):
            np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(a.state.obs_stats.mean, b.state.obs_stats.mean, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(a.state.reward_state.stats.var, b.state.reward_state.stats.var, rtol=1e-5)
        np.testing.assert_array_equal(np.asarray(a.state.rollout.obs), np.asarray(b.state.rollout.obs))  # same envs

    @check("data_parallel_matches_one_device")
    def _():
        train = make_data_parallel_train(DP)
        dp = train(key)
        assert dp.state.rollout.obs.shape == (8, 4) and dp.state.rollout.obs.sharding.num_devices == 4
        assert not dp.state.rollout.obs.sharding.is_fully_replicated
        assert_close_runs(one, dp)
        assert "all_reduce" in train.lower(key).as_text()  # the gradients really are averaged across devices
        # hparams: the same compiled program with other values
        other = train(key, DP.replace(learning_rate=1e-3, clip_param=0.1))
        assert not np.allclose(np.asarray(other.metrics["policy_loss"]), np.asarray(one.metrics["policy_loss"]))
        assert np.isfinite(np.asarray(other.metrics["policy_loss"])).all()

    @check("data_parallel_errors")
    def _():
        import pytest
        with pytest.raises(ValueError, match=r"num_envs=6 must be divisible by the number of devices \(4\)"):
            make_data_parallel_train(DP.replace(num_envs=6))
        with pytest.raises(ValueError, match="each device has num_envs / devices = 2 environments: "
                                             "PPOConfig.num_minibatches must divide num_envs \\* num_steps = 4"):
            make_data_parallel_train(DP.replace(num_minibatches=8, num_steps=2, total_timesteps=16))
        with pytest.raises(ValueError, match="each device has num_envs / devices = 2 environments: "
                                             "PPOConfig.num_minibatches must divide num_envs=2 for network='gru'"):
            make_data_parallel_train(DP.replace(network="gru", num_minibatches=4))

    @check("data_parallel_gru_matches_one_device")
    def _():
        # Each device replays its own environments' sequences from their carries; gradients are averaged.
        gru = DP.replace(network="gru", hidden_sizes=(16,), gru_hidden_size=16)
        one_gru, dp_gru = make_train(gru)(key), make_data_parallel_train(gru)(key)
        assert dp_gru.state.rollout.carry.shape == (8, 16) and dp_gru.state.rollout.carry.sharding.num_devices == 4
        assert_close_runs(one_gru, dp_gru)
        np.testing.assert_allclose(np.asarray(one_gru.state.rollout.carry), np.asarray(dp_gru.state.rollout.carry),
                                   rtol=1e-4, atol=1e-5)

    @check("pbt_members_split_over_devices")
    def _():
        # 4 members, one per device: every copy of a generation crosses devices; against all 4 on one device (the
        # batch size differs, so floats may round differently: the decisions must agree, the numbers closely)
        import pytest
        from purejaxppo.scale.population import default_mesh, pbt
        members = Mesh(np.array(jax.devices()[:1]), ("member",))
        assert default_mesh(4).size == 4 and default_mesh(6).size == 2 and default_mesh(1).size == 1
        space, config = {"learning_rate": (1e-4, 1e-2)}, CONFIG.replace(total_timesteps=768)  # 12 updates
        spread = pbt(config, 4, space, 4, jax.random.key(0))
        alone = pbt(config, 4, space, 4, jax.random.key(0), mesh=members)
        np.testing.assert_array_equal(spread.lineage["parent"], alone.lineage["parent"])
        assert (spread.lineage["parent"] >= 0).sum() == 2
        np.testing.assert_allclose(spread.lineage["hyperparameters"]["learning_rate"],
                                   alone.lineage["hyperparameters"]["learning_rate"], rtol=1e-6)
        for name in ("episode_return", "policy_loss", "value_loss"):
            np.testing.assert_allclose(spread.metrics[name], alone.metrics[name], rtol=1e-4, atol=1e-5, err_msg=name)
        for a, b in zip(leaves(spread.state.params), leaves(alone.state.params)):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
        with pytest.raises(ValueError, match="population \\(6\\) must be a multiple of the mesh's 4 devices"):
            pbt(config, 6, space, 4, mesh=Mesh(np.array(jax.devices()), ("member",)))

    print("SECONDS " + json.dumps(seconds))
    print("REPORT " + json.dumps(report))
""")


@pytest.fixture(scope="module")
def report() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "JAX_NUM_CPU_DEVICES"}  # it would override XLA_FLAGS
    env.update({"XLA_FLAGS": f"--xla_force_host_platform_device_count={DEVICES}", "JAX_PLATFORMS": "cpu"})
    proc = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=420,
                          check=False)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("REPORT ")]
    print(*[line for line in proc.stdout.splitlines() if line.startswith("SECONDS ")])  # shown with pytest -s
    assert proc.returncode == 0 and lines, f"subprocess failed ({proc.returncode}):\n{proc.stderr[-4000:]}"
    return json.loads(lines[-1][len("REPORT "):])


CHECKS = [
    "sharded_layout",
    "sharded_equals_one_device_bitwise",
    "program_is_sharded_without_collectives",
    "data_parallel_matches_one_device",
    "data_parallel_errors",
    "data_parallel_gru_matches_one_device",
    "pbt_members_split_over_devices",
]


@pytest.mark.timeout(480)
@pytest.mark.parametrize("name", CHECKS)
def test_sharding(report, name):
    assert report.get(name) == "ok", report.get(name, f"check {name!r} did not run")
