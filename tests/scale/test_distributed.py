"""Two processes on localhost (jax.distributed, CPU collectives over gloo) run one sharded `sweep` and one `pbt`.

Each process has one CPU device; the 4 seeds are spread over both (two cells per device), and every process gets the
whole gathered result. It must equal, bit for bit, one process running the same sweep on two (forced) devices, which
compiles the same per-device batch; likewise for `pbt`'s two members, one per process. All processes are bounded by timeouts and killed on failure.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from cli_helpers import free_port

TIMEOUT_S = 300

COMMON = textwrap.dedent(r"""
    import sys
    import numpy as np
    import jax

    def run_and_save(path):
        from purejaxppo import PPOConfig, sweep  # after jax.distributed.initialize: gymnax's import starts XLA

        result = sweep(PPOConfig(num_envs=4, num_steps=16, total_timesteps=320), num_seeds=4, keep_state=True)
        arrays = {f"metric/{k}": v for k, v in result.metrics.items()}
        arrays["state/obs"] = np.asarray(result.state.rollout.obs)
        arrays["state/key"] = np.asarray(jax.random.key_data(result.state.key))
        arrays["state/params"] = np.concatenate([np.ravel(x) for x in jax.tree.leaves(result.state.params)])
        arrays["info"] = np.array([jax.process_index(), jax.process_count(), len(jax.devices()),
                                   len(jax.local_devices())])
        from purejaxppo import pbt  # 2 members, one per device (process): the generations copy across processes
        population = pbt(PPOConfig(num_envs=4, num_steps=16, total_timesteps=512), population=2, ready_every=2,
                         hyperparameters={"learning_rate": (1e-4, 1e-2)})
        arrays["pbt/parent"] = population.lineage["parent"]
        arrays["pbt/learning_rate"] = population.lineage["hyperparameters"]["learning_rate"]
        arrays["pbt/episode_return"] = population.metrics["episode_return"]
        arrays["pbt/params"] = np.concatenate([np.ravel(x) for x in jax.tree.leaves(population.state.params)])
        np.savez(path, **arrays)
""")

WORKER = COMMON + textwrap.dedent(r"""
    process_id, port, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=f"127.0.0.1:{port}", num_processes=2, process_id=process_id,
                               initialization_timeout=120)
    run_and_save(path)
    jax.distributed.shutdown()
""")

REFERENCE = COMMON + "run_and_save(sys.argv[1])\n"


def clean_env(devices: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_PLATFORMS", "JAX_NUM_CPU_DEVICES")}
    return {**env, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}


@pytest.fixture(scope="module")
def outputs(tmp_path_factory) -> dict[str, dict[str, np.ndarray]]:
    tmp = tmp_path_factory.mktemp("distributed")
    port = free_port()
    procs = {
        f"process{i}": subprocess.Popen(
            [sys.executable, "-c", WORKER, str(i), str(port), str(tmp / f"process{i}.npz")],
            env=clean_env(1), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        for i in range(2)
    }
    procs["reference"] = subprocess.Popen(
        [sys.executable, "-c", REFERENCE, str(tmp / "reference.npz")],
        env=clean_env(2), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    logs = {}
    try:
        for name, proc in procs.items():
            logs[name], _ = proc.communicate(timeout=TIMEOUT_S)
            assert proc.returncode == 0, f"{name} exited {proc.returncode}:\n{logs[name][-3000:]}"
    finally:
        for proc in procs.values():  # on failure or timeout: no process is left behind
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return {name: dict(np.load(tmp / f"{name}.npz")) for name in procs}


@pytest.mark.timeout(TIMEOUT_S + 60)
@pytest.mark.slow
def test_each_process_sees_the_global_devices(outputs):
    for i in range(2):
        process_index, process_count, devices, local = outputs[f"process{i}"]["info"]
        assert (process_index, process_count, devices, local) == (i, 2, 2, 1)
    assert tuple(outputs["reference"]["info"]) == (0, 1, 2, 2)


@pytest.mark.timeout(TIMEOUT_S + 60)
def test_every_process_gets_the_whole_result_equal_to_one_process(outputs):
    reference = outputs["reference"]
    assert reference["metric/episode_return"].shape == (4, 5)
    assert reference["pbt/episode_return"].shape == (2, 8) and (reference["pbt/parent"] >= 0).sum() == 3
    for i in range(2):
        got = outputs[f"process{i}"]
        assert set(got) == set(reference)
        for name in reference:
            if name != "info":
                np.testing.assert_array_equal(got[name], reference[name], err_msg=f"process{i}: {name}")
