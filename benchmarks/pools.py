"""Host environment pools (``env_name="envpool:<task>"``) measured on this machine, part by part.

    python benchmarks/pools.py mujoco                 # (a) Hopper, HalfCheetah, Walker2d-v4: 1M steps x 3 seeds
    python benchmarks/pools.py sb3 --sb3-python SB3_PYTHON     # (b) HalfCheetah-v4 wall time against Stable-Baselines3
    python benchmarks/pools.py pong                   # (c) Pong-v5: PPO update steps/s, random play, a short run
    python benchmarks/pools.py async                  # (d) sync vs async pools: Pong-v5 pool alone, HalfCheetah PPO
    python benchmarks/pools.py render                 # the .md (and figure) again from the .json

Every measurement runs in a fresh Python process (``--worker``, one JSON line back). Results merge by part into
``benchmarks/results/pools-<device>.json``; the .md is rendered from the whole JSON, so parts can be rerun alone.

(a) CleanRL ppo_continuous_action's hyperparameters as a `PPOConfig` (`mujoco_config`), EnvPool's XLA route, all
seeds in one program (``jax.jit(jax.vmap(make_train(config)))(keys)``). Per seed: the mean of the last 10 updates'
episode returns, and greedy evaluation (`purejaxppo.evaluate`, 10 episodes, on evaluation keys training never used).
Reference: CleanRL's published 1M-step returns (`CLEANRL_MUJOCO`).

(b) The same hyperparameters in Stable-Baselines3's PPO (`worker_sb3`; run by SB3_PYTHON, a Python with
stable-baselines3, torch, gymnasium and mujoco: gymnasium's own HalfCheetah-v4), against purejaxppo (one seed, XLA
and callback routes), alternating in fresh processes (`--pairs`, the order rotating), each for `--steps` steps. The
wall time per 1M steps is extrapolated from the measured training time (compile excluded; it is reported apart).
torch runs with `--torch-threads` intra-op threads (1 by default: the faster setting for these 64-wide networks on
this machine; `--thread-probe` measures SB3 at 1 and 2 threads side by side to show it).

(c) CleanRL ppo_atari(_envpool)'s settings (`atari_config`): the whole PPO update's steps/s on both routes, a random
policy's return over 10 episodes, and a learning run of `--learn-minutes` (the first updates of CleanRL's 10M-step
schedule). `--cnn` picks the Nature CNN's convolutions: `shipped` (the package's choice: patch matmuls on the CPU
since 2026-12-07), `conv` (XLA's convolutions, `nn.Conv`) or `im2col` (patch matmuls, `networks.PatchConv`), the
same parameters and outputs to float rounding: XLA:CPU runs a convolution's gradient inside the minibatch `lax.scan`
far slower than the matmuls (see the results).

(d) The package's asynchronous pool (``env_kwargs={"backend": "xla", "pool_envs": 16}``, 8 answering per step)
against the sync XLA pool of 8 and of 16 environments: Pong-v5's pool alone (a jitted scan of `--async-steps` steps
with random actions) and whole PPO updates on HalfCheetah-v4 (`mujoco_config` at N environments x 256 steps),
`--repeats` fresh processes per case, the order rotating, medians.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from repo_paths import repo_relative  # noqa: E402  (paths in the results: relative to ROOT, never absolute)

RESULTS = HERE / "results"
PROVENANCE = ("command", "date", "purejaxppo_commit", "wall_s", "load_average_start", "load_average_end")
PARTS = ("mujoco", "sb3", "pong", "async")
MUJOCO_TASKS = ("Hopper-v4", "HalfCheetah-v4", "Walker2d-v4")
CLEANRL_URL = "https://docs.cleanrl.dev/rl-algorithms/ppo/#ppo_continuous_actionpy"
CLEANRL_MUJOCO = {  # episodic return at 1M steps, mean +- std over seeds (openrlbenchmark, tag pr-424)
    "HalfCheetah-v4": (1442.64, 46.03), "Walker2d-v4": (2287.95, 571.78), "Hopper-v4": (2382.86, 271.74),
}
EVAL_STREAM = 0xE7A1  # evaluation keys: fold_in(key(seed), EVAL_STREAM), independent of every training stream
LAST_UPDATES = 10  # "final return": the mean of the last 10 updates' episode returns
CURVE_POINTS = 100


# ----------------------------------------------------------------------------------------------------- configs
def mujoco_config(task: str, total_timesteps: int, backend: str = "xla"):
    """CleanRL ppo_continuous_action.py's hyperparameters: 1 env x 2048 steps, 10 epochs x 32 minibatches (64 each),
    Adam 3e-4 (eps 1e-5) annealed, gamma 0.99, lambda 0.95, clip 0.2 with value-loss clipping, entropy 0, vf 0.5,
    max_grad_norm 0.5, separate 64x64 tanh actor and critic, state-independent log-std, observations normalised
    (clipped at 10), rewards scaled by the discounted return's std (clipped at 10)."""
    from purejaxppo import PPOConfig

    return PPOConfig(
        env_name=f"envpool:{task}", env_kwargs={"backend": backend}, num_envs=1, num_steps=2048,
        total_timesteps=total_timesteps, update_epochs=10, num_minibatches=32, learning_rate=3e-4, anneal_lr=True,
        gamma=0.99, gae_lambda=0.95, clip_param=0.2, clip_value_loss=True, normalize_advantages=True,
        entropy_coeff=0.0, vf_coeff=0.5, max_grad_norm=0.5, adam_eps=1e-5, network="mlp", hidden_sizes=(64, 64),
        activation="tanh", normalize_observations=True, obs_clip=10.0, normalize_rewards=True, reward_clip=10.0,
    )


def atari_config(backend: str, total_timesteps: int = 10_000_000):
    """CleanRL ppo_atari_envpool.py's settings: 8 envs x 128 steps, 4 epochs x 4 minibatches, Adam 2.5e-4 (eps 1e-5)
    annealed over 10M steps, gamma 0.99, lambda 0.95, clip 0.1 with value-loss clipping, entropy 0.01, vf 0.5,
    max_grad_norm 0.5, the Nature CNN; EnvPool with episodic_life and reward_clip (its other Atari defaults: 4-frame
    skip and stack, 84x84 grey, up to 30 no-ops, fire reset, no sticky actions)."""
    from purejaxppo import PPOConfig

    return PPOConfig(
        env_name="envpool:Pong-v5", env_kwargs={"backend": backend, "episodic_life": True, "reward_clip": True},
        num_envs=8, num_steps=128, total_timesteps=total_timesteps, update_epochs=4, num_minibatches=4,
        learning_rate=2.5e-4, anneal_lr=True, gamma=0.99, gae_lambda=0.95, clip_param=0.1, clip_value_loss=True,
        entropy_coeff=0.01, vf_coeff=0.5, max_grad_norm=0.5, adam_eps=1e-5, network="nature_cnn",
    )


# ---------------------------------------------------------------------------------------------------- helpers
def nan_mean(values) -> float | None:
    import numpy as np

    values = np.asarray(values, np.float64)
    values = values[np.isfinite(values)]
    return float(values.mean()) if values.size else None


def mean_std(values) -> tuple[float, float]:
    import numpy as np

    values = np.asarray(values, np.float64)
    return float(values.mean()), float(values.std(ddof=1)) if values.size > 1 else 0.0


def downsample(steps, values) -> dict:
    import numpy as np

    steps, values = np.asarray(steps), np.asarray(values, np.float64)
    idx = np.unique(np.linspace(0, steps.size - 1, min(CURVE_POINTS, steps.size)).round().astype(int))
    return {"env_steps": [int(s) for s in steps[idx]],
            "return": [float(v) if np.isfinite(v) else None for v in values[idx]]}


def weighted_return(metrics, last: int) -> float | None:
    """The mean return of the episodes that finished in the last `last` updates (each update's mean weighted by its
    number of finished episodes)."""
    import numpy as np

    ret = np.asarray(metrics["episode_return"], np.float64)[-last:]
    count = np.asarray(metrics["episodes_finished"], np.float64)[-last:]
    ok = np.isfinite(ret) & (count > 0)
    return float((ret[ok] * count[ok]).sum() / count[ok].sum()) if ok.any() else None


def greedy_returns(config, states, num_seeds: int, episodes: int, seed: int = 0) -> list[list[float]]:
    """Greedy evaluation of each seed's final state, seed by seed (a vmapped `evaluate` over a host pool fails: its
    while_loop's predicate becomes batched, which JAX refuses with unordered IO effects)."""
    import jax
    import numpy as np

    from purejaxppo import evaluate

    keys = jax.random.split(jax.random.fold_in(jax.random.key(seed), EVAL_STREAM), num_seeds)
    out = []
    for i in range(num_seeds):
        state = jax.tree.map(lambda x, i=i: x[i], states)
        out.append([float(r) for r in np.asarray(evaluate(config, state, keys[i], num_episodes=episodes))])
    return out


def versions() -> dict:
    """Versions of what this process imports (the purejaxppo side)."""
    import envpool
    import jax
    import numpy as np

    import purejaxppo

    return {"purejaxppo": purejaxppo.__version__, "jax": jax.__version__, "envpool": envpool.__version__,
            "numpy": np.__version__, "python": platform.python_version()}


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


# ----------------------------------------------------------------------------------------------- (a) MuJoCo
def worker_mujoco(task: str, seeds: int, steps: int, backend: str, episodes: int) -> dict:
    import jax
    import numpy as np

    from purejaxppo import make_train

    config = mujoco_config(task, steps, backend)
    keys = jax.random.split(jax.random.key(0), seeds)
    program = jax.jit(jax.vmap(make_train(config)))
    t0 = time.perf_counter()
    compiled = program.lower(keys).compile()
    t1 = time.perf_counter()
    out = jax.block_until_ready(compiled(keys))
    t2 = time.perf_counter()
    metrics = jax.device_get(out.metrics)
    returns = np.asarray(metrics["episode_return"], np.float64)  # [S, U]
    last = [nan_mean(r[-LAST_UPDATES:]) for r in returns]
    evals = greedy_returns(config, out.state, seeds, episodes)
    t3 = time.perf_counter()
    env_steps = np.asarray(metrics["env_steps"])[0]
    return {
        "task": task, "backend": backend, "seeds": seeds, "steps_per_seed": config.timesteps_trained,
        "compile_s": t1 - t0, "train_s": t2 - t1, "eval_s": t3 - t2,
        "steps_per_s": seeds * config.timesteps_trained / (t2 - t1),
        "last10_per_seed": last, "eval_per_seed": [float(np.mean(e)) for e in evals], "eval_episodes": episodes,
        "curves": [downsample(env_steps, r) for r in returns],
        "nonfinite": int(np.asarray(metrics["nonfinite"]).sum()), "versions": versions(),
    }


def run_mujoco(args) -> dict:
    rows = []
    for task in args.tasks.split(","):
        row = run_worker(["mujoco", "--task", task, "--seeds", str(args.seeds), "--steps", str(args.steps),
                          "--backend", args.backend, "--episodes", str(args.episodes)])
        rows.append(row)
        print(f"{task}: last-10 {row['last10_per_seed']}, greedy {row['eval_per_seed']}, "
              f"{row['train_s']:.0f} s train, {row['steps_per_s']:,.0f} steps/s", flush=True)
    return {"rows": rows}


# ------------------------------------------------------------------------------------------ (b) against SB3
def worker_ours(task: str, steps: int, backend: str, episodes: int) -> dict:
    """purejaxppo, one seed, as the README trains one: ``make_train(config)(key)``."""
    import jax
    import numpy as np

    from purejaxppo import make_train

    config = mujoco_config(task, steps, backend)
    key = jax.random.key(0)
    train = make_train(config)
    t0 = time.perf_counter()
    compiled = train.lower(key).compile()
    t1 = time.perf_counter()
    out = jax.block_until_ready(compiled(key))
    t2 = time.perf_counter()
    metrics = jax.device_get(out.metrics)
    state = jax.tree.map(lambda x: x[None], out.state)
    evals = greedy_returns(config, state, 1, episodes)[0]
    return {"side": f"purejaxppo-{backend}", "steps": config.timesteps_trained, "compile_s": t1 - t0,
            "train_s": t2 - t1, "steps_per_s": config.timesteps_trained / (t2 - t1),
            "last10_return": nan_mean(np.asarray(metrics["episode_return"])[-LAST_UPDATES:]),
            "eval_return": float(np.mean(evals)), "versions": versions()}


def worker_sb3(task: str, steps: int, threads: int, episodes: int) -> dict:
    """Stable-Baselines3's PPO at the same hyperparameters, on gymnasium's own `task` (1 env, VecNormalize)."""
    import gymnasium as gym
    import mujoco
    import numpy as np
    import stable_baselines3
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    torch.set_num_threads(threads)
    monitor = []

    def make():
        env = Monitor(gym.make(task))
        monitor.append(env)
        return env

    venv = VecNormalize(DummyVecEnv([make]), norm_obs=True, norm_reward=True, clip_obs=10.0, clip_reward=10.0,
                        gamma=0.99)
    model = PPO("MlpPolicy", venv, n_steps=2048, batch_size=64, n_epochs=10, learning_rate=lambda left: 3e-4 * left,
                gamma=0.99, gae_lambda=0.95, clip_range=0.2, clip_range_vf=0.2, normalize_advantage=True,
                ent_coef=0.0, vf_coef=0.5, max_grad_norm=0.5, device="cpu", seed=0, verbose=0,
                policy_kwargs={"net_arch": {"pi": [64, 64], "vf": [64, 64]}, "activation_fn": torch.nn.Tanh})
    t0 = time.perf_counter()
    model.learn(total_timesteps=steps)
    train_s = time.perf_counter() - t0
    # the episodes that finished in the last 10 rollouts (10 x 2048 steps), as purejaxppo's last-10-update mean
    lengths, rewards = monitor[0].get_episode_lengths(), monitor[0].get_episode_rewards()
    ends = np.cumsum(lengths)
    last = [r for r, end in zip(rewards, ends) if end > model.num_timesteps - LAST_UPDATES * 2048]
    eval_env = VecNormalize(DummyVecEnv([lambda: gym.make(task)]), training=False, norm_reward=False, clip_obs=10.0)
    eval_env.obs_rms = venv.obs_rms
    eval_env.seed(12345)
    evals, _ = evaluate_policy(model, eval_env, n_eval_episodes=episodes, deterministic=True,
                               return_episode_rewards=True)
    return {"side": "sb3", "steps": int(model.num_timesteps), "compile_s": 0.0, "train_s": train_s,
            "steps_per_s": model.num_timesteps / train_s, "last10_return": float(np.mean(last)) if last else None,
            "eval_return": float(np.mean(evals)), "torch_threads": torch.get_num_threads(),
            "versions": {"stable-baselines3": stable_baselines3.__version__, "torch": torch.__version__,
                         "gymnasium": gym.__version__, "mujoco": mujoco.__version__, "numpy": np.__version__,
                         "python": platform.python_version()}}


def run_sb3(args) -> dict:
    if not args.sb3_python:
        raise SystemExit("name the Python with stable-baselines3: --sb3-python PATH")
    steps = args.steps // 2048 * 2048  # whole rollouts on both sides
    sides = ["purejaxppo-xla", "sb3", "purejaxppo-callback"]
    pairs = []

    def one(side: str, threads: int = args.torch_threads, budget: int = steps) -> dict:
        common = ["--task", args.task, "--steps", str(budget), "--episodes", str(args.episodes)]
        if side == "sb3":
            return run_worker(["sb3", *common, "--torch-threads", str(threads)], python=args.sb3_python,
                              pythonpath=False)
        return run_worker(["ours", *common, "--backend", side.split("-")[1]])

    for i in range(args.pairs):
        order = sides[i % len(sides):] + sides[: i % len(sides)]
        pair = {}
        for side in order:
            pair[side] = one(side)
            row = pair[side]
            print(f"pair {i + 1}/{args.pairs} {side:20s} {row['steps_per_s']:8,.0f} steps/s  train "
                  f"{row['train_s']:6.1f} s  compile {row['compile_s']:4.1f} s  last-10 {row['last10_return']}  greedy "
                  f"{row['eval_return']:.1f}", flush=True)
        pairs.append(pair)
    probe = None
    if args.thread_probe:
        probe_steps = 5 * 2048
        probe = {str(t): one("sb3", t, probe_steps) for t in (1, 2)}
        print(f"SB3 thread probe ({probe_steps} steps): " + ", ".join(
            f"{t} thread(s) {r['steps_per_s']:,.0f} steps/s" for t, r in probe.items()), flush=True)
    return {"task": args.task, "steps": steps, "pairs": pairs, "thread_probe": probe,
            "torch_threads": args.torch_threads, "summary": summarize_sb3(pairs)}


def summarize_sb3(pairs: list[dict]) -> dict:
    out = {}
    for side in pairs[0]:
        rows = [p[side] for p in pairs]
        per_1m = [r["train_s"] / r["steps"] * 1e6 for r in rows]
        out[side] = {"per_1m_s": per_1m, "median_per_1m_s": statistics.median(per_1m),
                     "median_steps_per_s": statistics.median(r["steps_per_s"] for r in rows),
                     "median_compile_s": statistics.median(r["compile_s"] for r in rows),
                     "last10_return": [r["last10_return"] for r in rows],
                     "eval_return": [r["eval_return"] for r in rows]}
        if side != "sb3":
            ratios = [p["sb3"]["train_s"] / p["sb3"]["steps"] / (p[side]["train_s"] / p[side]["steps"]) for p in pairs]
            with_compile = [(p["sb3"]["train_s"] / p["sb3"]["steps"] * 1e6)
                            / (p[side]["compile_s"] + p[side]["train_s"] / p[side]["steps"] * 1e6) for p in pairs]
            out[side].update(ratio_per_pair=ratios, median_ratio=statistics.median(ratios),
                             ratio_with_compile_per_pair=with_compile,
                             median_ratio_with_compile=statistics.median(with_compile))
    return out


# ------------------------------------------------------------------------------------------------- (c) Pong
CNN_FORMS = {"shipped": None, "conv": "xla", "im2col": "patch"}  # --cnn: the Nature CNN's convolutions (`conv`)


def use_cnn(variant: str) -> float | None:
    """Install the torso `variant` names: "shipped" leaves the package alone (since 2026-12-07 its CPU form is
    "im2col"); "conv" forces XLA's convolutions (`nn.Conv`), "im2col" the patch matmuls (`networks.PatchConv`).
    For a forced form, check it against the other (same key: same parameters) and return the largest output
    difference on random frames."""
    if CNN_FORMS[variant] is None:
        return None
    import jax
    import jax.numpy as jnp

    from purejaxppo.models import networks

    form = CNN_FORMS[variant]
    chosen = type("ChosenNatureCNN", (networks.NatureCNNTorso,), {"__annotations__": {"conv": str}, "conv": form})
    other = networks.NatureCNNTorso(conv="xla" if form == "patch" else "patch")
    x = jax.random.uniform(jax.random.key(1), (4, 84, 84, 4))
    p0, p1 = other.init(jax.random.key(0), x), chosen().init(jax.random.key(0), x)
    if jax.tree.structure(p0) != jax.tree.structure(p1) or not all(
            bool(jnp.array_equal(a, b)) for a, b in zip(jax.tree.leaves(p0), jax.tree.leaves(p1))):
        raise RuntimeError("the two convolution forms' parameters differ")
    diff = float(jnp.abs(other.apply(p0, x) - chosen().apply(p1, x)).max())
    networks.NatureCNNTorso = chosen
    return diff


def worker_pong_speed(backend: str, updates: int, cnn: str) -> dict:
    import jax

    from purejaxppo import make_train

    diff = use_cnn(cnn)
    config = atari_config(backend, total_timesteps=updates * 8 * 128)
    key = jax.random.key(0)
    train = make_train(config)
    t0 = time.perf_counter()
    compiled = train.lower(key).compile()
    t1 = time.perf_counter()
    jax.block_until_ready(compiled(key))
    t2 = time.perf_counter()
    return {"backend": backend, "cnn": cnn, "im2col_max_abs_diff": diff, "updates": updates,
            "steps": config.timesteps_trained, "compile_s": t1 - t0, "run_s": t2 - t1,
            "steps_per_s": config.timesteps_trained / (t2 - t1), "versions": versions()}


def worker_pong_random(episodes: int) -> dict:
    """A uniformly random policy on EnvPool's Pong-v5 (the learning run's env options), `episodes` whole episodes."""
    import envpool
    import numpy as np

    env = envpool.make("Pong-v5", env_type="gymnasium", num_envs=episodes, batch_size=episodes, seed=123,
                       episodic_life=True, reward_clip=True)
    env.reset()
    rng = np.random.default_rng(0)
    total, done, steps = np.zeros(episodes), np.zeros(episodes, bool), 0
    while not done.all():
        _, reward, terminated, truncated, _ = env.step(rng.integers(0, env.action_space.n, episodes).astype(np.int32))
        total += np.where(done, 0.0, reward)
        done |= terminated | truncated
        steps += 1
    mean, std = mean_std(total)
    return {"episodes": episodes, "returns": total.tolist(), "mean": mean, "std": std, "steps": steps}


def worker_pong_learn(backend: str, minutes: float, cnn: str, chunk: int, episodes: int) -> dict:
    """The first updates of CleanRL's 10M-step schedule, in compiled chunks of `chunk` updates, until `minutes`."""
    import jax
    import numpy as np

    from purejaxppo.envs.pools import host_errors
    from purejaxppo.training.train import make_train_functions

    diff = use_cnn(cnn)
    config = atari_config(backend)
    fns = make_train_functions(config)
    init = jax.jit(fns.init)
    run_chunk = jax.jit(lambda state: fns.run(state, num_updates=chunk))
    t_start = time.perf_counter()
    with host_errors(fns.setup.env):
        state = jax.block_until_ready(init(jax.random.key(0)))
        compiled = run_chunk.lower(state).compile()
        compile_s = time.perf_counter() - t_start
        chunks, train_s = [], 0.0
        while True:
            t0 = time.perf_counter()
            state, metrics = jax.block_until_ready(compiled(state))
            took = time.perf_counter() - t0
            train_s += took
            metrics = jax.device_get(metrics)
            chunks.append({"env_steps": int(np.asarray(metrics["env_steps"])[-1]), "seconds": train_s,
                           "return": weighted_return(metrics, chunk),
                           "episodes": int(np.asarray(metrics["episodes_finished"]).sum())})
            print(f"pong learn: {chunks[-1]['env_steps']:,} steps, {train_s:.0f} s, chunk return "
                  f"{chunks[-1]['return']}", file=sys.stderr, flush=True)
            if train_s + took > minutes * 60:
                break
    returns = np.asarray([c["return"] if c["return"] is not None else np.nan for c in chunks], np.float64)
    counts = np.asarray([c["episodes"] for c in chunks], np.float64)
    tail = slice(-max(1, len(chunks) // 10), None)  # the last tenth of the chunks
    ok = np.isfinite(returns[tail]) & (counts[tail] > 0)
    final = float((returns[tail][ok] * counts[tail][ok]).sum() / counts[tail][ok].sum()) if ok.any() else None
    evals = greedy_returns(config, jax.tree.map(lambda x: x[None], state), 1, episodes)[0]
    steps = chunks[-1]["env_steps"]
    return {"backend": backend, "cnn": cnn, "im2col_max_abs_diff": diff, "chunk_updates": chunk,
            "compile_s": compile_s, "train_s": train_s, "steps": steps, "steps_per_s": steps / train_s,
            "final_return": final, "final_window_steps": len(chunks[tail]) * chunk * config.batch_size,
            "eval_returns": evals, "eval_mean": float(np.mean(evals)), "chunks": chunks, "versions": versions()}


def run_pong(args) -> dict:
    out = {}
    if "random" in args.pong_parts:
        out["random"] = run_worker(["pong-random", "--episodes", str(args.episodes)])
        print(f"random policy: {out['random']['mean']:.2f} +- {out['random']['std']:.2f}", flush=True)
    if "speed" in args.pong_parts:
        out["speed"] = []
        for cnn in args.speed_cnns.split(","):
            for backend in ("xla", "callback"):
                updates = args.conv_updates if cnn == "conv" else args.updates
                row = run_worker(["pong-speed", "--backend", backend, "--updates", str(updates), "--cnn", cnn])
                out["speed"].append(row)
                print(f"pong speed {backend} {cnn}: {row['steps_per_s']:.1f} steps/s ({row['run_s']:.0f} s for "
                      f"{row['steps']} steps, compile {row['compile_s']:.0f} s)", flush=True)
    if "learn" in args.pong_parts:
        out["learn"] = run_worker(["pong-learn", "--backend", args.backend, "--minutes", str(args.learn_minutes),
                                   "--cnn", args.cnn, "--chunk", str(args.chunk), "--episodes", str(args.episodes)])
        row = out["learn"]
        print(f"pong learn: {row['steps']:,} steps in {row['train_s']:.0f} s, final {row['final_return']}, greedy "
              f"{row['eval_mean']}", flush=True)
    return out


# -------------------------------------------------------------------------------------- (d) sync vs async
ASYNC_CASES = {  # name: (pool_envs P or 0 for sync, num_envs N answered per step)
    "sync N=8": (0, 8), "async P=16, N=8": (16, 8), "sync N=16": (0, 16),
}
ASYNC_WORKLOADS = {  # name: (task, what is timed)
    "Pong-v5 pool only": ("Pong-v5", "pool"), "HalfCheetah-v4 PPO": ("HalfCheetah-v4", "ppo"),
}


def async_kwargs(pool_envs: int) -> dict:
    """The XLA route's env_kwargs: asynchronous with a pool of `pool_envs` environments, or sync for 0."""
    return {"backend": "xla", **({"pool_envs": pool_envs} if pool_envs else {})}


def async_env(task: str, pool_envs: int):
    from purejaxppo.envs import make_env

    return make_env(f"envpool:{task}", async_kwargs(pool_envs))


def worker_async(case: str, workload: str, steps: int) -> dict:
    """One case's env steps/s in this fresh process: the pool alone (reset, then `steps` steps with random actions in
    one jitted scan) or whole PPO updates (`mujoco_config` at N environments x 256 steps, a jitted chunk of 4 updates
    after the first); best of 2 timed calls after a warm-up one, compile excluded. An asynchronous pool is reset once
    per traced program, so each pool-only call is traced and compiled again (on a fresh pool) before it is timed."""
    import functools

    import jax

    from purejaxppo.envs.pools import host_errors

    pool_envs, num_envs = ASYNC_CASES[case]
    task, what = ASYNC_WORKLOADS[workload]
    key = jax.random.key(0)
    if what == "pool":
        pool = async_env(task, pool_envs)

        def run(key):
            _, state = pool.reset(jax.random.split(key, num_envs))

            def body(state, k):
                out = pool.step(None, state, jax.random.randint(k, (num_envs,), 0, pool.spec.num_actions))
                return out.env_state, out.reward.sum()

            return jax.lax.scan(body, state, jax.random.split(key, steps))[1].sum()

        def timed_call() -> float:
            compiled = jax.jit(functools.partial(run)).lower(key).compile()  # a new function: a fresh pool
            start = time.perf_counter()
            jax.block_until_ready(compiled(key))
            return time.perf_counter() - start

        env, done = pool, num_envs * steps
    else:
        from purejaxppo.training.train import make_train_functions

        config = mujoco_config(task, num_envs * 256 * 12).replace(
            num_envs=num_envs, num_steps=256, num_minibatches=8,
            env_kwargs=async_kwargs(pool_envs))
        fns = make_train_functions(config)
        holder = [jax.jit(fns.init)(key)]
        chunk = jax.jit(lambda s: fns.run(s, num_updates=4))

        def timed_call() -> float:
            start = time.perf_counter()
            holder[0], metrics = chunk(holder[0])
            jax.block_until_ready(metrics)
            return time.perf_counter() - start

        env, done = fns.setup.env, num_envs * 256 * 4
    with host_errors(env):
        times = [timed_call() for _ in range(3)][1:]  # the first compiles (PPO) or warms up
    return {"case": case, "workload": workload, "steps": done, "seconds": min(times),
            "steps_per_s": done / min(times)}


def run_async(args) -> dict:
    cases = [(case, workload) for workload in ASYNC_WORKLOADS for case in ASYNC_CASES]
    rows = []
    for r in range(args.repeats):
        for i in range(len(cases)):
            case, workload = cases[(i + r) % len(cases)]  # the order rotates between repeats
            row = run_worker(["async", "--case", case, "--workload", workload, "--steps", str(args.async_steps)])
            row["repeat"] = r
            rows.append(row)
            print(f"repeat {r + 1}: {workload:20s} {case:16s} {row['steps_per_s']:8,.0f} steps/s", flush=True)
    summary = {}
    for case, workload in cases:
        values = [x["steps_per_s"] for x in rows if x["case"] == case and x["workload"] == workload]
        summary.setdefault(workload, {})[case] = {"per_repeat": values, "median": statistics.median(values)}
    return {"rows": rows, "summary": summary}


# ----------------------------------------------------------------------------------------------- the driver
def run_worker(argv: list[str], python: str | None = None, pythonpath: bool = True, extra_path: str | None = None
               ) -> dict:
    """One measurement in a fresh process; its last JSON line. stderr passes through (progress, warnings)."""
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    if extra_path:
        env["PYTHONPATH"] = os.pathsep.join([extra_path, env.get("PYTHONPATH", "")])
    cmd = [python or sys.executable, str(Path(__file__).resolve()), "--worker", *argv]
    # cwd: MuJoCo writes its warnings to MUJOCO_LOG.TXT in the working directory, not into the checkout
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, env=env, check=False, cwd=tempfile.gettempdir())
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"worker {argv} failed ({proc.returncode}):\n{proc.stdout[-3000:]}")
    return json.loads(lines[-1])


def worker_main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("kind")
    ap.add_argument("--task", default="HalfCheetah-v4")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=1_000_000)
    ap.add_argument("--backend", default="xla")
    ap.add_argument("--episodes", type=int, default=10)
    ap.add_argument("--torch-threads", type=int, default=1)
    ap.add_argument("--updates", type=int, default=4)
    ap.add_argument("--cnn", default="shipped")
    ap.add_argument("--minutes", type=float, default=25.0)
    ap.add_argument("--chunk", type=int, default=10)
    ap.add_argument("--case")
    ap.add_argument("--workload")
    a = ap.parse_args(argv)
    if a.kind == "mujoco":
        row = worker_mujoco(a.task, a.seeds, a.steps, a.backend, a.episodes)
    elif a.kind == "ours":
        row = worker_ours(a.task, a.steps, a.backend, a.episodes)
    elif a.kind == "sb3":
        row = worker_sb3(a.task, a.steps, a.torch_threads, a.episodes)
    elif a.kind == "pong-speed":
        row = worker_pong_speed(a.backend, a.updates, a.cnn)
    elif a.kind == "pong-random":
        row = worker_pong_random(a.episodes)
    elif a.kind == "pong-learn":
        row = worker_pong_learn(a.backend, a.minutes, a.cnn, a.chunk, a.episodes)
    elif a.kind == "async":
        row = worker_async(a.case, a.workload, a.steps)
    else:
        raise SystemExit(f"unknown worker {a.kind}")
    print(json.dumps(row), flush=True)


def device_label() -> str:
    return f"cpu-{os.cpu_count()}core"  # these parts run on the CPU (the pools are host environments)


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"], capture_output=True,
                             text=True, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def command_line(argv: list[str]) -> str:
    """The command as run, with the outside paths named by their placeholders."""
    words, placeholders = [], {"--sb3-python": "SB3_PYTHON", "--out": None}
    skip = False
    for i, word in enumerate(argv):
        if skip:
            skip = False
            continue
        name, sep, value = word.partition("=")
        if name in placeholders:
            holder = placeholders[name] or repo_relative(value if sep else argv[i + 1])
            words.append(f"{name} {holder}")
            skip = not sep
        else:
            words.append(word)
    return "python benchmarks/pools.py " + " ".join(words)


def load(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {"parts": {}}


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        worker_main(argv[1:])
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("part", choices=(*PARTS, "render"))
    ap.add_argument("--out", type=Path, default=RESULTS, help="results directory")
    ap.add_argument("--tasks", default=",".join(MUJOCO_TASKS), help="mujoco: EnvPool tasks")
    ap.add_argument("--task", default="HalfCheetah-v4", help="sb3: the task")
    ap.add_argument("--seeds", type=int, default=3, help="mujoco: seeds per task (one program)")
    ap.add_argument("--steps", type=int, default=None, help="mujoco: steps per seed (1M); sb3: per run (200k)")
    ap.add_argument("--backend", default="xla", choices=("xla", "callback"), help="mujoco, pong learn: the route")
    ap.add_argument("--episodes", type=int, default=10, help="greedy evaluation episodes (random play for pong)")
    ap.add_argument("--sb3-python", help="sb3: a Python with stable-baselines3, torch, gymnasium, mujoco")
    ap.add_argument("--pairs", type=int, default=3, help="sb3: alternating rounds of fresh processes")
    ap.add_argument("--torch-threads", type=int, default=1, help="sb3: torch intra-op threads")
    ap.add_argument("--thread-probe", action="store_true", help="sb3: also time SB3 at 1 and 2 torch threads")
    ap.add_argument("--pong-parts", default="random,speed,learn", help="pong: which of random, speed, learn")
    ap.add_argument("--speed-cnns", default="conv,im2col", help="pong speed: convolution forms to time")
    ap.add_argument("--updates", type=int, default=4, help="pong speed: updates timed (patch matmuls)")
    ap.add_argument("--conv-updates", type=int, default=1, help="pong speed: updates timed (XLA's convolutions)")
    ap.add_argument("--learn-minutes", type=float, default=25.0, help="pong learn: training time")
    ap.add_argument("--cnn", default="shipped", choices=tuple(CNN_FORMS), help="pong learn: the convolutions")
    ap.add_argument("--chunk", type=int, default=10, help="pong learn: updates per compiled chunk")
    ap.add_argument("--async-steps", type=int, default=400, help="async: pool steps timed (pool-only workload)")
    ap.add_argument("--repeats", type=int, default=3, help="async: fresh processes per case")
    args = ap.parse_args(argv)

    path = args.out / f"pools-{device_label()}.json"
    report = load(path)
    if args.part != "render":
        args.steps = args.steps or (1_000_000 if args.part == "mujoco" else 200_000)
        started, load_start, commit = time.time(), os.getloadavg(), git_commit()
        result = {"mujoco": run_mujoco, "sb3": run_sb3, "pong": run_pong, "async": run_async}[args.part](args)
        result.update(date=datetime.date.today().isoformat(), command=command_line(argv),
                      purejaxppo_commit=commit, wall_s=time.time() - started,
                      load_average_start=[round(x, 2) for x in load_start],
                      load_average_end=[round(x, 2) for x in os.getloadavg()])
        if args.part == "pong" and args.part in report["parts"]:  # sub-parts merge too, each command kept
            previous = report["parts"]["pong"]
            earlier = previous.get("earlier", []) + [{k: previous[k] for k in PROVENANCE if k in previous}]
            result = {**previous, **result, "earlier": earlier}
        report["parts"][args.part] = result
        report.update(device=device_label(), cpu=cpu_name(), cores=os.cpu_count())
        args.out.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=1) + "\n")
    (args.out / f"pools-{device_label()}.md").write_text(markdown(report))
    if "mujoco" in report["parts"]:
        figure(report, args.out / f"pools-mujoco-{device_label()}.png")
    print(f"wrote {path} and .md")


# ------------------------------------------------------------------------------------------------ rendering
def fmt(x, digits: int = 1) -> str:
    return "-" if x is None else f"{x:,.{digits}f}"


def pm(values, digits: int = 1) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    mean, std = mean_std(values)
    return f"{mean:,.{digits}f} ± {std:,.{digits}f}"


def markdown(report: dict) -> str:
    parts = report["parts"]
    lines = [f"# Host environment pools on {report.get('device', 'cpu')} ({report.get('cpu', 'CPU')})", "",
             ("EnvPool tasks as `env_name=\"envpool:<task>\"`, stepped from inside the jitted training program. "
             f"Device "
             f"`{report.get('device')}`: {report.get('cores')} cores of an {report.get('cpu')}, **shared with other "
             "engineers' jobs while these ran** (the load averages are recorded per part in the JSON): absolute "
             "times drift; ratios come from alternating fresh processes in one session. Every part below names the "
             "command that made it; `benchmarks/pools.py` renders this file from "
             f"`pools-{report.get('device')}.json`."), ""]
    if "mujoco" in parts:
        lines += markdown_mujoco(parts["mujoco"], report.get("device", "cpu"))
    if "sb3" in parts:
        lines += markdown_sb3(parts["sb3"])
    if "pong" in parts:
        lines += markdown_pong(parts["pong"])
    if "async" in parts:
        lines += markdown_async(parts["async"])
    lines += ["## (e) GPU", "", "| part | result |", "|---|---|",
              "| every part on a GPU | not measured: no GPU was lent to this task |", ""]
    return "\n".join(lines)


def _header(part: dict) -> list[str]:
    v = part.get("versions", {})
    text = (f"`{part['command']}` — {part['date']}, purejaxppo {part['purejaxppo_commit']}, {part['wall_s'] / 60:.0f} "
            f"min, load average {part['load_average_start'][0]:.1f} at the start, {part['load_average_end'][0]:.1f} "
            "at the end.")
    if v:
        text += " " + ", ".join(f"{k} {val}" for k, val in v.items()) + "."
    return [text, ""]


def markdown_mujoco(part: dict, device: str) -> list[str]:
    rows = part["rows"]
    part = {**part, "versions": rows[0]["versions"]}
    lines = ["## (a) MuJoCo returns at CleanRL's settings", ""] + _header(part) + [
        ("CleanRL ppo_continuous_action.py's hyperparameters (`mujoco_config`: 1 env x 2048 steps, 10 epochs x 32 "
        "minibatches of 64, Adam 3e-4 annealed, gamma 0.99, lambda 0.95, clip 0.2 with value-loss clipping, entropy "
        "0, vf 0.5, max_grad_norm 0.5, separate 64x64 tanh actor and critic, observation normalisation and reward "
        "scaling clipped at 10), EnvPool's XLA route, all seeds of a task in one program "
        "(`jax.jit(jax.vmap(make_train(config)))(keys)`). Last-10 = each seed's mean episode return over its last "
        "10 updates; greedy = each seed's mean over 10 greedy evaluation episodes (`evaluate`, the callback pool, "
        "evaluation keys). Mean ± std over seeds. CleanRL: its published episodic return at 1M steps "
        f"([docs]({CLEANRL_URL}), openrlbenchmark tag pr-424), mean ± std over its seeds."), "",
        ("| task | steps per seed | seeds | last-10 return | greedy return | CleanRL 1M | per seed (last-10 / greedy) "
        "| wall time s (compile + train + eval) | env steps/s (all seeds) |"),
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ref = CLEANRL_MUJOCO.get(r["task"])
        budget = f"{r['steps_per_seed']:,}" + ("" if r["steps_per_seed"] >= 999_424 else " (reduced budget)")
        seeds = "; ".join(f"{fmt(a, 0)} / {fmt(b, 0)}" for a, b in zip(r["last10_per_seed"], r["eval_per_seed"]))
        lines.append(
            f"| {r['task']} | {budget} | {r['seeds']} | {pm(r['last10_per_seed'])} | {pm(r['eval_per_seed'])} "
            f"| {ref[0]:,.2f} ± {ref[1]:,.2f} | {seeds} | {r['compile_s'] + r['train_s'] + r['eval_s']:,.0f} "
            f"({r['compile_s']:.0f} + {r['train_s']:.0f} + {r['eval_s']:.0f}) | {r['steps_per_s']:,.0f} |"
            if ref else f"| {r['task']} | {budget} | {r['seeds']} | {pm(r['last10_per_seed'])} | - | - | - | - | - |")
    lines += ["", (f"Learning curves: `pools-mujoco-{device}.png` (each seed's episode return per update; the grey "
                   "band: CleanRL's 1M-step mean ± std)."), ""]
    return lines


def markdown_sb3(part: dict) -> list[str]:
    s = part["summary"]
    first = part["pairs"][0]
    ours_v, sb3_v = first["purejaxppo-xla"]["versions"], first["sb3"]["versions"]
    lines = ["## (b) Wall time per 1M MuJoCo steps against Stable-Baselines3", "",
             (f"`{part['command']}` — {part['date']}, purejaxppo {part['purejaxppo_commit']}, "
             f"{part['wall_s'] / 60:.0f} min, load average {part['load_average_start'][0]:.1f} at the start, "
             f"{part['load_average_end'][0]:.1f} at the end."), "",
             f"{part['task']}, the same hyperparameters on both sides (SB3: `PPO('MlpPolicy', n_steps=2048, "
             "batch_size=64, n_epochs=10, learning_rate=3e-4 linear, gamma=0.99, gae_lambda=0.95, clip_range=0.2, "
             "clip_range_vf=0.2, ent_coef=0, vf_coef=0.5, max_grad_norm=0.5, net_arch pi/vf 64x64 tanh)` on "
             "`VecNormalize(obs and reward, clipped at 10)` over 1 `DummyVecEnv` env, gymnasium's own "
             f"{part['task']}), {part['steps']:,} steps per run, {len(part['pairs'])} rounds of fresh processes in "
             "one session, the order rotating each round. Train time excludes process start, imports and "
             "(purejaxppo) the compile, reported apart; per-1M figures are **extrapolated** from the measured "
             f"{part['steps']:,} steps. Ratio = SB3's train time per step / purejaxppo's, round by round. "
             f"torch: {first['sb3']['torch_threads']} intra-op thread(s) (`torch.get_num_threads()`); both sides "
             "see the same 2 cores. purejaxppo: "
             + ", ".join(f"{k} {v}" for k, v in ours_v.items()) + ". SB3 side: "
             + ", ".join(f"{k} {v}" for k, v in sb3_v.items()) + ".", "",
             ("| side | s per 1M steps (per round) | median s per 1M | median steps/s | compile s | ratio vs SB3 per "
             "round | **median ratio** | median ratio incl. one compile | return at the budget: last-10 (per round) "
             "| greedy (per round) |"), "|---|---|---|---|---|---|---|---|---|---|"]
    for side in ("purejaxppo-xla", "purejaxppo-callback", "sb3"):
        if side not in s:
            continue
        r = s[side]
        ratio = ", ".join(f"{x:.2f}" for x in r.get("ratio_per_pair", [])) or "-"
        med = f"**{r['median_ratio']:.2f}x**" if "median_ratio" in r else "-"
        with_c = f"{r['median_ratio_with_compile']:.2f}x" if "median_ratio_with_compile" in r else "-"
        lines.append(
            f"| {side} | {', '.join(f'{x:,.0f}' for x in r['per_1m_s'])} | {r['median_per_1m_s']:,.0f} "
            f"| {r['median_steps_per_s']:,.0f} | {r['median_compile_s']:.1f} | {ratio} | {med} | {with_c} "
            f"| {', '.join(fmt(x, 0) for x in r['last10_return'])} "
            f"| {', '.join(fmt(x, 0) for x in r['eval_return'])} |")
    if part.get("thread_probe"):
        probe = part["thread_probe"]
        lines += ["", "SB3 at 1 and 2 torch threads, side by side in the same session "
                  f"({probe['1']['steps']:,} steps each): " + ", ".join(
                      f"{t} thread(s) {r['steps_per_s']:,.0f} steps/s" for t, r in probe.items())
                  + ". On this shared 2-core machine torch's second thread costs far more than it gives, so SB3 runs "
                  "with its faster setting."]
    lines += ["", ("Returns at this budget are early-training values (CleanRL's 1M-step figure is in part (a)): they "
              "show that both sides learn, not which learns better. The two sides' HalfCheetah-v4 are different "
              "builds (EnvPool's bundled MuJoCo against gymnasium's with the mujoco Python bindings)."), ""]
    return lines


def markdown_pong(part: dict) -> list[str]:
    runs = [*part.get("earlier", []), {k: part[k] for k in PROVENANCE if k in part}]
    lines = ["## (c) Atari Pong-v5 from the pool", ""] + [
        (f"`{r['command']}` — {r['date']}, purejaxppo {r['purejaxppo_commit']}, {r['wall_s'] / 60:.0f} min, load "
         f"average {r['load_average_start'][0]:.1f} at the start, {r['load_average_end'][0]:.1f} at the end"
         + (" (the latest; its sub-parts replace the earlier ones')." if i == len(runs) - 1 and len(runs) > 1 else "."))
        for i, r in enumerate(runs)] + ["",
             ("CleanRL ppo_atari_envpool.py's settings (`atari_config`: 8 envs x 128 steps, 4 epochs x 4 minibatches "
             "of 256, Adam 2.5e-4 annealed over 10M steps, clip 0.1, entropy 0.01, the Nature CNN; EnvPool "
             "`episodic_life=True, reward_clip=True`, 4-frame skip and stack, 84x84)."), ""]
    if "random" in part:
        r = part["random"]
        lines += [(f"**Random play**: a uniformly random policy on the same EnvPool Pong-v5 returns {r['mean']:.2f} ± "
                  f"{r['std']:.2f} over {r['episodes']} episodes (measured here; -20.7 is the usual figure)."), ""]
    if "speed" in part:
        lines += [("**Whole PPO update, steps/s** (`make_train(config)` compiled, then one call of `updates` updates: "
                  "rollout, GAE and 16 minibatch steps each; compile apart). The torso's convolutions: `conv` is "
                  "XLA's (`nn.Conv`), and so is `shipped` in rows measured before 2026-12-07's PatchConv commit "
                  "(at fd922ce); `im2col` is one matmul over each convolution's patches (`networks.PatchConv`, the "
                  "package's CPU form since then), the same parameters from the same key and outputs equal to float "
                  "rounding."), "",
                  ("| route | torso | updates timed | run s | **steps/s** | compile s | largest output difference "
                  "vs shipped |"), "|---|---|---|---|---|---|---|"]
        for r in part["speed"]:
            diff = "-" if r["im2col_max_abs_diff"] is None else f"{r['im2col_max_abs_diff']:.1e}"
            lines.append(f"| {r['backend']} | {r['cnn']} | {r['updates']} ({r['steps']:,} steps) | {r['run_s']:.1f} "
                         f"| **{r['steps_per_s']:,.1f}** | {r['compile_s']:.1f} | {diff} |")
        lines.append("")
    if "learn" in part:
        r = part["learn"]
        rnd = part.get("random", {}).get("mean")
        lines += [(f"**Learning run** ({r['backend']} route, {r['cnn']} torso, 1 seed): the first "
                  f"{r['steps']:,} steps of CleanRL's 10M-step schedule (learning rate annealed over 10M), "
                  f"{r['train_s'] / 60:.1f} min of training ({r['steps_per_s']:,.0f} steps/s, compile "
                  f"{r['compile_s']:.0f} s). Return of the episodes finished in the last tenth of the run: "
                  f"**{fmt(r['final_return'], 2)}**; greedy evaluation over {len(r['eval_returns'])} episodes: "
                  f"**{r['eval_mean']:.2f}** (random play: {fmt(rnd, 2)}). At this rate CleanRL's 10M-step budget "
                  f"would take {10_000_000 / r['steps_per_s'] / 3600:.1f} h on this machine."), "",
                  "| env steps | minutes | mean return of the episodes finished in the chunk | episodes |",
                  "|---|---|---|---|"]
        chunks = r["chunks"]
        picks = sorted({round(i) for i in [x * (len(chunks) - 1) / 9 for x in range(10)]}) if len(chunks) > 10 \
            else range(len(chunks))
        for i in picks:
            c = chunks[i]
            lines.append(f"| {c['env_steps']:,} | {c['seconds'] / 60:.1f} | {fmt(c['return'], 2)} | {c['episodes']} |")
        lines.append("")
    return lines


def markdown_async(part: dict) -> list[str]:
    lines = ["## (d) Sync vs async pools", "",
             (f"`{part['command']}` — {part['date']}, {part['wall_s'] / 60:.0f} min, load average "
             f"{part['load_average_start'][0]:.1f} at the start, {part['load_average_end'][0]:.1f} at the end."), "",
             ("The package's routes, EnvPool's XLA interface: `pool_envs=16` (16 environments, each step answering "
              "the 8 ready first) against the sync pools of 8 and 16. Env steps/s (every environment step the "
              "program took); each case in a fresh process per repeat, the order rotating; best of 2 timed calls "
              "after a compiling one; medians over the repeats. *Pool only*: reset, then a jitted scan of steps "
              "with random actions. *PPO*: whole updates (rollout, GAE, 10 epochs) at CleanRL's MuJoCo settings "
              "with N environments x 256 steps."), "",
             "| workload | " + " | ".join(f"{c}: per repeat | **median**" for c in ASYNC_CASES)
             + " | async / sync N=8 |", "|---|" + "---|---|" * len(ASYNC_CASES) + "---|"]
    for workload, cases in part["summary"].items():
        cells = []
        for case in ASYNC_CASES:
            r = cases.get(case)
            cells += ["-", "-"] if r is None else [", ".join(f"{v:,.0f}" for v in r["per_repeat"]),
                                                   f"**{r['median']:,.0f}**"]
        sync, asy = cases.get("sync N=8"), cases.get("async P=16, N=8")
        ratio = f"x{asy['median'] / sync['median']:.2f}" if sync and asy else "-"
        lines.append(f"| {workload} | " + " | ".join(cells) + f" | {ratio} |")
    lines.append("")
    return lines


def figure(report: dict, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import numpy as np
    except ImportError:
        return
    rows = report["parts"]["mujoco"]["rows"]
    fig, axes = plt.subplots(1, len(rows), figsize=(5 * len(rows), 3.6), squeeze=False)
    for ax, r in zip(axes[0], rows):
        for i, c in enumerate(r["curves"]):
            y = np.asarray([np.nan if v is None else v for v in c["return"]], np.float64)
            ax.plot(np.asarray(c["env_steps"]) / 1e6, y, lw=1, label=f"seed {i}")
        ref = CLEANRL_MUJOCO.get(r["task"])
        if ref:
            ax.axhspan(ref[0] - ref[1], ref[0] + ref[1], color="grey", alpha=0.2)
            ax.axhline(ref[0], color="grey", ls="--", lw=1, label="CleanRL 1M (pr-424)")
        ax.set_title(f"envpool:{r['task']} (xla route)")
        ax.set_xlabel("env steps (M)")
        ax.set_ylabel("episode return")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
