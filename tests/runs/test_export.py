"""Exported policies (`purejaxppo export`, `purejaxppo.runs.export`): the ONNX model (run with onnxruntime) and the
deserialized StableHLO program choose the same actions as the JAX greedy policy (`load_policy(run).act`), for a
discrete, a continuous (normalised observations, clipped actions) and a recurrent policy; a NumPy-only example plays
CartPole with an exported policy; bad input is one error line."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from cli_helpers import TRAIN

from purejaxppo import cli
from purejaxppo.runs.export import export_policy, run_onnx
from purejaxppo.runs.policy import load_policy

ROOT = Path(__file__).resolve().parents[2]
HAVE_ONNX = all(importlib.util.find_spec(m) is not None for m in ("jax2onnx", "onnxruntime", "onnx"))
if os.environ.get("PUREJAXPPO_REQUIRE_ONNX") and not HAVE_ONNX:  # .ci/run's ONNX step: a skip would hide it
    raise ImportError("PUREJAXPPO_REQUIRE_ONNX is set but jax2onnx, onnx or onnxruntime is missing")
needs_onnx = pytest.mark.skipif(not HAVE_ONNX, reason="ONNX export needs the export extra (jax2onnx, onnx, "
                                                      "onnxruntime), which the test extra does not install")
NUM_ENVS, NUM_STEPS = 10, 100  # 1,000 observations


def train(run_dir: Path, *argv: str) -> Path:
    assert cli.main([*TRAIN, "--logdir", str(run_dir), *argv]) == 0
    return run_dir


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("export")
    return {
        "cartpole": train(root / "cartpole", "--env", "CartPole-v1"),
        "pendulum": train(root / "pendulum", "--env", "Pendulum-v1"),  # its config normalises observations
        "gru": train(root / "gru", "--env", "MemoryChain-bsuite", "--network", "gru", "--num-minibatches", "2"),
    }


def collect(loaded, seed: int = 0) -> np.ndarray:
    """``[NUM_ENVS * NUM_STEPS, *obs_shape]`` observations from the environment under random actions."""
    env, spec = loaded.setup.env, loaded.setup.env.spec

    def random_action(key):
        if spec.discrete:
            return jax.random.randint(key, (NUM_ENVS,), 0, spec.num_actions)
        return jax.random.uniform(key, (NUM_ENVS, spec.num_actions), minval=spec.action_low * 1.5,
                                  maxval=spec.action_high * 1.5)

    def body(carry, key):
        obs, state = carry
        k_act, k_env = jax.random.split(key)
        out = env.step(jax.random.split(k_env, NUM_ENVS), state, random_action(k_act))
        return (out.obs, out.env_state), obs

    key = jax.random.key(seed)
    start = env.reset(jax.random.split(key, NUM_ENVS))
    _, obs = jax.jit(lambda k: jax.lax.scan(body, start, jax.random.split(k, NUM_STEPS)))(jax.random.fold_in(key, 1))
    return np.asarray(obs).reshape(NUM_ENVS * NUM_STEPS, *spec.obs_shape)


def jax_greedy(loaded, obs: np.ndarray) -> np.ndarray:
    """What the exported function should return: the greedy action, clipped into the Box for continuous actions."""
    _, action = loaded.act((), obs)
    spec = loaded.setup.env.spec
    return np.asarray(action) if spec.discrete else np.clip(np.asarray(action), spec.action_low, spec.action_high)


def check_actions(loaded, expected: np.ndarray, got: np.ndarray) -> None:
    assert got.shape == expected.shape
    if loaded.setup.env.spec.discrete:
        np.testing.assert_array_equal(got, expected)
    else:
        np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)


def load_stablehlo(path: Path):
    return jax.export.deserialize(bytearray(path.read_bytes()))


# ---------------------------------------------------------------------------------------------- feed-forward
@needs_onnx
@pytest.mark.parametrize("name", ["cartpole", "pendulum"])
def test_onnx_chooses_the_jax_greedy_actions(runs, tmp_path, name):
    loaded = load_policy(runs[name])
    path = export_policy(runs[name], "onnx", out=tmp_path / "policy.onnx")
    obs = collect(loaded)
    (action,) = run_onnx(path, obs)
    check_actions(loaded, jax_greedy(loaded, obs), action)
    meta = json.loads(Path(f"{path}.json").read_text())
    assert meta["batch_size"] is None and meta["inputs"][0]["shape"] == ["B", *loaded.setup.env.spec.obs_shape]
    if name == "pendulum":  # the clipping is in the model: its actions stay inside the Box
        assert meta["normalized_observations"] and meta["action_high"] == [2.0]
        assert np.all(np.abs(action) <= 2.0)


@pytest.mark.parametrize("name", ["cartpole", "pendulum"])
def test_stablehlo_chooses_the_jax_greedy_actions(runs, tmp_path, name):
    loaded = load_policy(runs[name], seed_index=1)
    path = export_policy(runs[name], "stablehlo", seed_index=1, out=tmp_path / "policy.stablehlo")
    exported = load_stablehlo(path)
    obs = collect(loaded, seed=1)
    check_actions(loaded, jax_greedy(loaded, obs), np.asarray(exported.call(jnp.asarray(obs))))
    one = np.asarray(exported.call(jnp.asarray(obs[:1])))  # the batch dimension is symbolic
    check_actions(loaded, jax_greedy(loaded, obs[:1]), one)
    with pytest.raises(Exception, match="shape"):  # a wrong observation shape is refused by jax
        exported.call(jnp.zeros((2, obs.shape[1] + 1), jnp.float32))


def test_stablehlo_with_a_fixed_batch(runs, tmp_path):
    path = export_policy(runs["cartpole"], "stablehlo", out=tmp_path / "p.stablehlo", batch_size=3)
    assert json.loads(Path(f"{path}.json").read_text())["batch_size"] == 3
    assert load_stablehlo(path).in_avals[0].shape == (3, 4)


# ------------------------------------------------------------------------------------------------- recurrent
def assert_gru_episode_matches(runs, tmp_path, fmt: str) -> None:
    """Several whole MemoryChain episodes in NUM_ENVS environments, acting with the JAX policy: the exported
    function, its carry threaded from step to step, gives the same actions and carries."""
    loaded = load_policy(runs["gru"])
    env = loaded.setup.env
    path = export_policy(runs["gru"], fmt, out=tmp_path / f"gru.{fmt}")
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        call = lambda obs, carry, reset: run_onnx(path, obs, carry, reset, session=session)
    else:
        exported = load_stablehlo(path)
        call = lambda obs, carry, reset: exported.call(jnp.asarray(obs), jnp.asarray(carry), jnp.asarray(reset))
    key = jax.random.key(3)
    obs, state = env.reset(jax.random.split(key, NUM_ENVS))
    carry_jax = loaded.initial_carry(NUM_ENVS)
    carry_exp = np.zeros(carry_jax.shape, np.float32)
    reset = np.ones(NUM_ENVS, bool)
    step = jax.jit(env.step)
    episodes_ended = 0
    for t in range(3 * env.spec.max_steps_in_episode if env.spec.max_steps_in_episode < 30 else 20):
        carry_jax, action = loaded.act(carry_jax, obs, reset)
        action_exp, carry_exp = call(np.asarray(obs), carry_exp, reset)
        np.testing.assert_array_equal(np.asarray(action_exp), np.asarray(action), err_msg=f"step {t}")
        np.testing.assert_allclose(np.asarray(carry_exp), np.asarray(carry_jax), atol=1e-5, rtol=0)
        out = step(jax.random.split(jax.random.fold_in(key, t), NUM_ENVS), state, action)
        obs, state = out.obs, out.env_state
        reset = np.asarray(out.terminated | out.truncated)
        episodes_ended += int(reset.sum())
    assert episodes_ended >= NUM_ENVS  # every environment played at least one whole episode, and carried on


@needs_onnx
def test_onnx_gru_episode_with_the_carry_threaded(runs, tmp_path):
    assert_gru_episode_matches(runs, tmp_path, "onnx")


def test_stablehlo_gru_episode_with_the_carry_threaded(runs, tmp_path):
    assert_gru_episode_matches(runs, tmp_path, "stablehlo")


# --------------------------------------------------------------------------------------------------- errors
@needs_onnx
def test_run_onnx_checks_shapes(runs, tmp_path):
    path = export_policy(runs["cartpole"], "onnx", out=tmp_path / "p.onnx")
    with pytest.raises(ValueError, match=r"input 'obs' has shape \[2, 5\]; the policy expects \['B', 4\]"):
        run_onnx(path, np.zeros((2, 5), np.float32))
    with pytest.raises(ValueError, match="takes 1 inputs"):
        run_onnx(path, np.zeros((2, 4), np.float32), np.zeros(2))


def test_command_line(runs, tmp_path, capsys):
    out = tmp_path / "cp.stablehlo"
    assert cli.main(["export", str(runs["cartpole"]), "--format", "stablehlo", "--out", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out and out.is_file()
    (tmp_path / "empty").mkdir()
    for argv, message in [
        (["export", str(runs["cartpole"]), "--format", "tflite"], "invalid choice 'tflite'"),
        (["export", str(tmp_path / "empty"), "--format", "stablehlo"], "holds no checkpoints"),
        (["export", str(tmp_path / "missing"), "--format", "onnx"], "does not exist"),
        (["export", str(runs["cartpole"]), "--format", "stablehlo", "--seed-index", "5"], "seed_index must be in"),
        (["export", str(runs["cartpole"]), "--format", "stablehlo", "--batch-size", "0"], "--batch-size must be"),
    ]:
        assert cli.main(argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], (argv, err)


# -------------------------------------------------------------------------------------------- the example
@needs_onnx
@pytest.mark.slow
def test_numpy_example_plays_cartpole_to_500(tmp_path):
    run = tmp_path / "cartpole"
    assert cli.main(["train", "--env", "CartPole-v1", "--quiet", "--logdir", str(run)]) == 0  # shipped config
    path = export_policy(run, "onnx", out=tmp_path / "cartpole.onnx")
    blocker = tmp_path / "nojax"
    blocker.mkdir()  # `import jax` fails in the example's process, whatever it imports
    (blocker / "jax.py").write_text("raise ImportError('the example must not import jax')\n")
    command = [sys.executable, str(ROOT / "examples" / "onnx_cartpole.py"), str(path), "--episodes", "3"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False,
                            env={"PYTHONPATH": str(blocker), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    returns = [float(line.split()[-1]) for line in result.stdout.splitlines() if line.startswith("episode")]
    assert returns == [500.0, 500.0, 500.0], result.stdout
    assert "jax imported: False" in result.stdout


# ---------------------------------------------------------------------------------------------- action masks
def test_a_mask_is_an_extra_input_and_illegal_actions_are_never_chosen(runs):
    """No shipped environment has a mask: the CartPole policy is exported as if its environment had one."""
    from purejaxppo.runs.export import greedy_function

    loaded = load_policy(runs["cartpole"])
    env = loaded.setup.env
    masked = loaded._replace(setup=loaded.setup._replace(env=env._replace(spec=env.spec._replace(
        has_action_mask=True))))
    f, inputs, _ = greedy_function(masked)
    assert [name for name, _, _ in inputs] == ["obs", "mask"]
    obs = collect(loaded)
    mask = np.array(jax.random.bernoulli(jax.random.key(5), 0.5, (len(obs), 2)))
    mask[:, 0] |= ~mask[:, 1]  # at least one legal action
    _, expected = loaded.act((), obs, mask=mask)
    got = np.asarray(jax.jit(f)(obs, mask))
    np.testing.assert_array_equal(got, np.asarray(expected))
    assert mask[np.arange(len(obs)), got].all()
    if HAVE_ONNX:
        import jax2onnx
        import onnxruntime

        model = jax2onnx.to_onnx(f, [jax.ShapeDtypeStruct(("B", 4), np.float32),
                                     jax.ShapeDtypeStruct(("B", 2), np.bool_)], input_names=["obs", "mask"])
        session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        np.testing.assert_array_equal(session.run(None, {"obs": obs, "mask": mask})[0], got)
