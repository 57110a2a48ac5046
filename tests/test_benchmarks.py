"""Host-side logic of the benchmark scripts (the measurements themselves run in benchmarks/, not in tests)."""

import importlib.util
import json
import re
from pathlib import Path, PureWindowsPath

import numpy as np
import pytest

pytestmark = pytest.mark.timeout(60)


def _load(name):
    path = Path(__file__).parent.parent / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"benchmarks_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


scaling = _load("scaling")


@pytest.mark.parametrize("capacity", [1, 7, 2047, 2048, 2049, 5000, 100_000, 123_456])
def test_find_max_seeds_brackets_the_capacity(capacity):
    largest, failing, tried = scaling.find_max_seeds(lambda n: n <= capacity, start=2048)
    assert largest <= capacity < failing  # the answer fits and the reported failure really fails
    assert failing - largest <= max(1, 0.05 * largest)
    assert all(ok == (n <= capacity) for n, ok in tried)
    assert len(tried) == len(set(n for n, _ in tried)) <= 30  # no count is run twice


def test_find_max_seeds_stops_at_the_limit():
    largest, failing, tried = scaling.find_max_seeds(lambda n: True, start=3, limit=100)
    assert (largest, failing) == (96, None)
    assert [n for n, _ in tried] == [3, 6, 12, 24, 48, 96]


def test_out_of_memory_is_told_apart_from_other_failures(monkeypatch):
    class Done:
        def __init__(self, stderr):
            self.returncode, self.stdout, self.stderr = 1, "", stderr

    monkeypatch.setattr(scaling.subprocess, "run", lambda *a, **k: Done("jaxlib...XlaRuntimeError: RESOURCE_EXHAUSTED: "
                                                                        "Out of memory while trying to allocate"))
    with pytest.raises(scaling.OutOfMemory):
        scaling.run_worker({"num_seeds": 8}, 1, "gpu", 10)
    monkeypatch.setattr(scaling.subprocess, "run", lambda *a, **k: Done("ValueError: something else"))
    with pytest.raises(RuntimeError) as err:
        scaling.run_worker({"num_seeds": 8}, 1, "gpu", 10)
    assert not isinstance(err.value, scaling.OutOfMemory)


returns = _load("returns")


def test_grid_and_set_arguments_parse_or_say_what_is_wrong():
    assert returns.parse_grid("learning_rate=5e-4,5e-3") == ("learning_rate", [5e-4, 5e-3])
    assert returns.parse_overrides(["num_envs=8", "hidden_sizes=[32, 32]", "network=cnn"]) == {
        "num_envs": 8, "hidden_sizes": [32, 32], "network": "cnn"}
    for bad in ("learning_rate", "learning_rate=", "=1e-3", "learning_rate=fast"):
        with pytest.raises(ValueError, match="--grid takes FIELD=V1,V2"):
            returns.parse_grid(bad)
    with pytest.raises(ValueError, match="--set takes FIELD=VALUE"):
        returns.parse_overrides(["learning_rate"])


def test_a_row_names_what_differs_from_the_shipped_config(capsys):
    from purejaxppo.configs import load_config

    shipped = load_config("Breakout-MinAtar")
    assert returns.overrides_of(shipped.replace(total_timesteps=81920), "Breakout-MinAtar") == {}  # budget: no setting
    changed = shipped.replace(learning_rate=shipped.learning_rate / 10, entropy_coeff=0.0)
    assert returns.overrides_of(changed, "Breakout-MinAtar") == {"learning_rate": shipped.learning_rate / 10,
                                                                 "entropy_coeff": 0.0}
    with pytest.raises(SystemExit):  # a shape-setting field cannot share a program: refused before any training
        returns.main(["--envs", "CartPole-v1", "--grid", "num_envs=4,8"])
    assert "--grid needs a float hyperparameter" in capsys.readouterr().err


def test_rows_merge_by_environment_and_setting_shipped_config_first():
    def row(env, iqm, **overrides):
        return {"env_name": env, "iqm": iqm, "overrides": overrides}

    old = [row("Catch-bsuite", 0.5), row("CartPole-v1", 400.0), row("CartPole-v1", 300.0, learning_rate=1e-3)]
    new = [row("CartPole-v1", 450.0, learning_rate=1e-3), row("CartPole-v1", 500.0)]
    merged = returns.merge_rows(old, new)
    assert [(r["env_name"], r["overrides"], r["iqm"]) for r in merged] == [
        ("CartPole-v1", {}, 500.0), ("CartPole-v1", {"learning_rate": 1e-3}, 450.0), ("Catch-bsuite", {}, 0.5)]


@pytest.mark.timeout(300)
def test_grid_cells_equal_lone_runs_of_each_setting():
    """`--grid`: every setting trains the same seeds in one program; each cell matches that setting trained alone."""
    import jax
    import numpy as np

    from purejaxppo import PPOConfig

    config = PPOConfig(env_name="CartPole-v1", num_envs=4, num_steps=16, total_timesteps=128, num_minibatches=2,
                       update_epochs=2)
    values = [1e-3, 3e-2]
    grid = [config.replace(learning_rate=v) for v in values]
    states, metrics, _ = returns.train_seeds(config, num_seeds=2, seed=3, grid=grid)
    assert metrics["policy_loss"].shape == (2, 2, config.num_updates)  # [G, S, U]
    for i, cfg in enumerate(grid):
        alone, _, _ = returns.train_seeds(cfg, num_seeds=2, seed=3)
        for a, b in zip(jax.tree.leaves(jax.tree.map(lambda x: x[i], states.params)), jax.tree.leaves(alone.params)):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    first = jax.tree.leaves(states.params)[0]
    assert not np.allclose(first[0], first[1])  # the two learning rates really trained differently


peers = _load("peers")


def test_peer_configs_mirror_purejaxrl_defaults():
    from purejaxppo import PPOConfig

    cartpole = peers.peer_config("CartPole-v1", None)
    ours = peers.our_config(cartpole)
    assert ours == PPOConfig()  # PureJaxRL's CartPole defaults are purejaxppo's own
    # the same budget: PureJaxRL trains TOTAL // (NUM_ENVS * NUM_STEPS) updates of NUM_ENVS * NUM_STEPS steps
    assert peers.steps_per_seed(cartpole) == ours.timesteps_trained == 976 * 512
    minatar = peers.our_config(peers.peer_config("Breakout-MinAtar", None))
    assert (minatar.num_envs, minatar.num_minibatches, minatar.learning_rate, minatar.network) == (64, 8, 5e-3, "mlp")
    assert minatar.timesteps_trained == peers.steps_per_seed(peers.peer_config("Breakout-MinAtar", None))


def test_sides_alternate_and_ratios_are_taken_pair_by_pair(tmp_path, monkeypatch):
    """Pair i runs purejaxppo first when i is even; each ratio compares the two runs of one pair; both files are
    written after every case."""
    calls = []
    speed = {"purejaxppo": [300.0, 200.0, 330.0], "purejaxrl": [100.0, 100.0, 110.0]}

    def fake_worker(side, args, seeds):
        calls.append((side, seeds))
        if side == "env":
            return {"side": "env", "compile_s": 0.1, "run_s": 1.0, "steps_per_s": 1e6}
        n = sum(1 for s, k in calls if s == side and k == seeds) - 1
        return {"side": side, "compile_s": 5.0, "run_s": 1.0, "steps_per_s": speed[side][n], "final_return": 500.0}

    monkeypatch.setattr(peers, "run_worker", fake_worker)
    peers.main(["--purejaxrl-dir", str(tmp_path), "--seeds", "1,8", "--pairs", "3", "--out", str(tmp_path / "out")])
    sides = [s for s, k in calls if k == 1]
    assert sides == ["purejaxppo", "purejaxrl", "purejaxrl", "purejaxppo", "purejaxppo", "purejaxrl", "env"]
    report = peers.json.loads((tmp_path / "out" / f"peers-{peers.device_label()}.json").read_text())
    summary = report["cases"][0]["summary"]
    assert summary["ratio_per_pair"] == [3.0, 2.0, 3.0] and summary["median_ratio"] == 3.0
    assert [c["seeds"] for c in report["cases"]] == [1, 8]
    table = (tmp_path / "out" / f"peers-{peers.device_label()}.md").read_text()
    assert "| CartPole-v1, 1 seed, jax.vmap(make_train) | 300 | 100 | 3.00, 2.00, 3.00 | **3.00** |" in table
    assert report["peer"]["dir"] == f"{tmp_path.name} (outside the repository)"  # not the machine's absolute path


def test_several_seeds_run_the_documented_sweep_and_optionally_vmap_too(tmp_path, monkeypatch):
    """One seed: make_train (vmapped); several: sweep over one device per core, plus the vmap path with --also-vmap,
    each ratio against the same pair's peer run."""
    calls = []

    def fake_worker(side, args, seeds):
        calls.append(side)
        speed = {"purejaxppo": 400.0, "purejaxppo-vmap": 220.0, "purejaxrl": 200.0, "env": 1e6}[side]
        return {"side": side, "compile_s": 5.0, "run_s": 1.0, "steps_per_s": speed, "final_return": 500.0,
                "api": "sweep" if side == "purejaxppo" else "vmap", "devices": 2 if side == "purejaxppo" else 1}

    monkeypatch.setattr(peers, "run_worker", fake_worker)
    assert [peers.documented_api(s) for s in (1, 8)] == ["vmap", "sweep"]
    peers.main(["--purejaxrl-dir", str(tmp_path), "--seeds", "8", "--pairs", "2", "--also-vmap",
                "--out", str(tmp_path)])
    assert calls == ["purejaxppo", "purejaxppo-vmap", "purejaxrl", "purejaxrl", "purejaxppo-vmap", "purejaxppo", "env"]
    case = peers.json.loads((tmp_path / f"peers-{peers.device_label()}.json").read_text())["cases"][0]
    assert case["summary"]["median_ratio"] == 2.0 and case["summary_vmap"]["median_ratio"] == 1.1
    table = (tmp_path / f"peers-{peers.device_label()}.md").read_text()
    assert "| CartPole-v1, 8 seeds, sweep over 2 CPU devices | 400 | 200 | 2.00, 2.00 | **2.00** |" in table
    assert "| CartPole-v1, 8 seeds, jax.vmap(make_train) | 220 | 200 | 1.10, 1.10 | **1.10** |" in table


def test_rejax_runs_its_own_config_on_both_sides_in_its_own_python(tmp_path, monkeypatch):
    """--rejax-python: the rejax side runs in that interpreter, both sides get rejax's CartPole config, the report is
    peers-rejax-<device>; rejax's config equals the one its peer runner was checked against."""
    cartpole = peers.rejax_config("CartPole-v1", None)
    ours = peers.our_config(cartpole)
    assert (ours.num_envs, ours.num_steps, ours.update_epochs, ours.num_minibatches) == (5, 100, 5, 5)
    assert (ours.learning_rate, ours.anneal_lr, ours.timesteps_trained) == (7.5e-4, False, 100_000)
    commands = []

    def fake_run(cmd, **kwargs):
        commands.append(cmd)
        if cmd[1] == "-c":  # the version probe
            return peers.subprocess.CompletedProcess(cmd, 0, "0.1.3 0.0.9\n", "")
        if "--worker" not in cmd:  # git describe
            return peers.subprocess.CompletedProcess(cmd, 0, "abc1234\n", "")
        side = cmd[cmd.index("--worker") + 1]
        row = {"side": side, "compile_s": 1.0, "run_s": 1.0, "steps_per_s": {"rejax": 100.0}.get(side, 150.0),
               "final_return": 400.0}
        return peers.subprocess.CompletedProcess(cmd, 0, peers.json.dumps(row) + "\n", "")

    monkeypatch.setattr(peers.subprocess, "run", fake_run)
    peers.main(["--rejax-python", "/venv/bin/python", "--seeds", "1", "--pairs", "1", "--out", str(tmp_path)])
    workers = {c[c.index("--worker") + 1]: c for c in commands if "--worker" in c}
    assert workers["rejax"][0] == "/venv/bin/python" and workers["purejaxppo"][0] == peers.sys.executable
    assert all(c[c.index("--config-of") + 1] == "rejax" for c in workers.values())
    report = peers.json.loads((tmp_path / f"peers-rejax-{peers.device_label()}.json").read_text())
    assert report["peer"]["commit"] == "0.1.3 (gymnax 0.0.9)" and report["cases"][0]["summary"]["median_ratio"] == 1.5
    with pytest.raises(SystemExit, match="only rejax's CartPole-v1"):
        peers.main(["--rejax-python", "/venv/bin/python", "--env", "Acrobot-v1", "--out", str(tmp_path)])


def test_the_peer_must_be_named(capsys):
    with pytest.raises(SystemExit):
        peers.main(["--seeds", "1"])
    assert "--purejaxrl-dir" in capsys.readouterr().err


pbt_bench = _load("pbt")


def test_pbt_budget_is_a_multiple_of_the_segments():
    config, ready_every = pbt_bench.budget_config("Acrobot-v1", 0.5, 10)
    assert config.num_updates == 10 * ready_every and config.total_timesteps == config.num_updates * config.batch_size
    assert config.total_timesteps <= 250_000


def test_pbt_last_return_is_nan_aware():
    metrics = np.array([[np.nan, 1.0, 3.0], [np.nan, np.nan, np.nan]])
    np.testing.assert_array_equal(pbt_bench.last_return(metrics, last=3), [2.0, -np.inf])


def test_pbt_markdown_labels_a_reduced_budget():
    side = {"iqm": -100.0, "ci": [-110.0, -90.0], "seconds": 1.0}
    row = {"env": "Acrobot-v1", "budget_scale": 0.5, "budget_per_member": 1000, "seeds": 2, "pbt": side, "grid": side}
    text = pbt_bench.markdown({"device": "cpu-2core", "rows": [row]})
    assert "reduced budget x0.5" in text and "-100.0 [-110.0, -90.0]" in text


pools_bench = _load("pools")


def test_pools_command_names_outside_paths_by_placeholders(tmp_path):
    line = pools_bench.command_line(["sb3", "--sb3-python", str(tmp_path / "venv/bin/python"), "--pairs", "3",
                                     f"--sb3-python={tmp_path}", "--out", str(tmp_path / "out")])
    assert line == ("python benchmarks/pools.py sb3 --sb3-python SB3_PYTHON --pairs 3 --sb3-python SB3_PYTHON "
                    "--out out (outside the repository)")


def test_pools_ratios_against_sb3_are_per_step_and_round_by_round():
    def side(train_s, compile_s=0.0):
        return {"steps": 1000, "train_s": train_s, "compile_s": compile_s, "steps_per_s": 1000 / train_s,
                "last10_return": 1.0, "eval_return": 2.0}

    pairs = [{"sb3": side(100.0), "purejaxppo-xla": side(10.0, 5.0)}, {"sb3": side(90.0), "purejaxppo-xla": side(20.0)}]
    summary = pools_bench.summarize_sb3(pairs)["purejaxppo-xla"]
    assert summary["ratio_per_pair"] == pytest.approx([10.0, 4.5])
    assert summary["median_ratio"] == pytest.approx(7.25)
    assert summary["ratio_with_compile_per_pair"][0] == pytest.approx(1e5 / (5 + 1e4))  # one compile per 1M steps
    assert summary["median_per_1m_s"] == pytest.approx(15_000.0)


def test_pools_markdown_labels_reduced_budgets_and_the_missing_gpu():
    part = {"command": "python benchmarks/pools.py mujoco --steps 4096", "date": "2026-01-01", "purejaxppo_commit": "x",
            "wall_s": 60.0, "load_average_start": [1.0], "load_average_end": [2.0], "rows": [{
                "task": "Hopper-v4", "steps_per_seed": 4096, "seeds": 2, "last10_per_seed": [10.0, 20.0],
                "eval_per_seed": [30.0, None], "compile_s": 1.0, "train_s": 2.0, "eval_s": 3.0, "steps_per_s": 5.0,
                "versions": {"jax": "0"}}]}
    text = pools_bench.markdown({"device": "cpu-2core", "cpu": "AMD EPYC", "cores": 2, "parts": {"mujoco": part}})
    assert "| Hopper-v4 | 4,096 (reduced budget) | 2 | 15.0 ± 7.1 | 30.0 ± 0.0 | 2,382.86 ± 271.74 |" in text
    assert "not measured: no GPU was lent to this task" in text


repo_paths = _load("repo_paths")
RESULTS = Path(__file__).parent.parent / "benchmarks" / "results"
# an absolute path as a JSON string or in text: /home/..., ~/..., C:\...
ABSOLUTE = re.compile(r"""(^|["'`(\s])(/(home|root|tmp|work|Users|mnt|opt|var|srv|data)/|~/|[A-Za-z]:\\)""")


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def test_no_result_file_holds_an_absolute_path():
    """The committed results name paths relative to the repository (benchmarks/repo_paths.py), never a machine's."""
    files = sorted(p for p in RESULTS.iterdir() if p.suffix in (".json", ".md"))
    assert any(p.suffix == ".json" for p in files)
    hits = [f"{p.name}: {m.group(0).strip()!r}" for p in files for m in ABSOLUTE.finditer(p.read_text())]
    for p in (p for p in files if p.suffix == ".json"):
        hits += [f"{p.name}: {s!r}" for s in _strings(json.loads(p.read_text()))
                 if Path(s).is_absolute() or PureWindowsPath(s).is_absolute() or s.startswith("~")]
    assert not hits, "absolute paths in benchmarks/results:\n" + "\n".join(hits)


def test_repo_relative_never_gives_an_absolute_path(tmp_path):
    root = Path(__file__).resolve().parent.parent
    assert repo_paths.repo_relative(root / "purejaxppo") == "purejaxppo"
    assert repo_paths.repo_relative(root) == "."
    assert repo_paths.repo_relative(tmp_path / "purejaxrl", root=root) == "purejaxrl (outside the repository)"
    assert repo_paths.repo_relative("/") == "(outside the repository)"
