"""Side by side with a peer, in one run: purejaxppo against PureJaxRL (or another purejaxppo checkout).

    git clone https://github.com/luchris429/purejaxrl && git -C purejaxrl checkout 31756b1
    python benchmarks/peers.py --purejaxrl-dir purejaxrl                      # CartPole, 1 and 8 seeds, 3 pairs each
    python benchmarks/peers.py --purejaxrl-dir purejaxrl --env Breakout-MinAtar --seeds 64 --pairs 3
    python benchmarks/peers.py --baseline-dir ../purejaxppo-old               # against another purejaxppo version
    python benchmarks/peers.py --rejax-python rejax-venv/bin/python           # against rejax 0.1.3, its own config

Absolute speed on shared machines drifts by 2x between days, so only ratios measured side by side mean anything.
For each case (environment, seed count) the two sides run alternately, each in a fresh Python process, `--pairs`
times (pair i runs purejaxppo first when i is even, the peer first when it is odd, so a drift in the machine's speed
does not favour one side). Both sides train the same thing the way their documentation shows, with PureJaxRL's own
default config for the environment family. PureJaxRL: ``jax.jit(jax.vmap(make_train(config)))`` over the seeds.
purejaxppo: the same for one seed; for several, ``sweep(config, num_seeds=S)`` with one JAX device per CPU core
(``JAX_NUM_CPU_DEVICES``, set for its process when unset), as the README shows first. ``--also-vmap`` adds
purejaxppo's ``jax.vmap`` path on one device as a third side of every pair, so both figures come from one run.

* CartPole-v1: 4 envs x 128 steps, 4 epochs x 4 minibatches, lr 2.5e-4 annealed, 5e5 steps per seed;
* MinAtar: 64 envs x 128 steps, 4 epochs x 8 minibatches, lr 5e-3 annealed, 1e7 steps per seed, its MLP (64, 64,
  tanh) on flattened observations.

Each side reports its compile time (`lower().compile()`, tracing included; for `sweep`, its first call minus its
second), its run time (one call of the compiled program; for `sweep`, its second call), env steps per second over all
seeds and its final return (the mean episode return over the last 10 updates
and the seeds). The environment-only ceiling (gymnax alone, random actions, one jitted scan over the same number of
environments and steps) is measured once per case in the same run. Results: benchmarks/results/peers-<device>.json
and .md (``baseline-<device>`` with --baseline-dir).

rejax (``--rejax-python``: the interpreter of a venv made with ``python -m venv rejax-venv && rejax-venv/bin/pip
install rejax==0.1.3 gymnax==0.0.9 jax==0.9.2 jaxlib==0.9.2``; rejax 0.1.3 unpacks gymnax 0.0.x's 5-value `step`, so
it cannot share this project's environment). Both sides run rejax's own CartPole-v1 config (`rejax_config`: 5 envs x
100 steps, 5 epochs x 5 minibatches, lr 7.5e-4 constant, 100,000 steps), rejax as its README shows,
``jax.jit(jax.vmap(algo.train))`` over the seeds, with its in-training evaluation switched off
(``algo.replace(eval_callback=...)``) so that the timed program only trains; its final return is its own evaluation
(128 episodes, sampled actions) run once after the timing. What purejaxppo has no knob for (rejax clips gradients
element-wise, does not bootstrap at time limits, initialises with flax's defaults) changes what is learned, hardly the
work per step.

PureJaxRL was written for gymnax 0.0.x, whose `step` returns 5 values. Under gymnax >= 1.0 its worker sees each
environment through a view whose `step` returns ``(obs, state, reward, terminated | truncated, info)``: PureJaxRL's
own semantics, unchanged otherwise. Its wrappers import brax and navix, which CartPole and MinAtar never use; they
are stubbed when missing.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from repo_paths import repo_relative  # noqa: E402  (paths in the results: relative to ROOT, never absolute)

RESULTS = HERE / "results"
PUREJAXRL_COMMIT = "31756b1"  # the commit these results were measured against
REJAX_VERSION = "0.1.3"


# ------------------------------------------------------------------------------------------------------ the config
def peer_config(env_name: str, total_timesteps: float | None) -> dict:
    """PureJaxRL's default config for `env_name`'s family (its upper-case keys)."""
    minatar = "MinAtar" in env_name
    return {
        "LR": 5e-3 if minatar else 2.5e-4, "NUM_ENVS": 64 if minatar else 4, "NUM_STEPS": 128,
        "TOTAL_TIMESTEPS": total_timesteps or (1e7 if minatar else 5e5), "UPDATE_EPOCHS": 4,
        "NUM_MINIBATCHES": 8 if minatar else 4, "GAMMA": 0.99, "GAE_LAMBDA": 0.95, "CLIP_EPS": 0.2, "ENT_COEF": 0.01,
        "VF_COEF": 0.5, "MAX_GRAD_NORM": 0.5, "ACTIVATION": "tanh", "ENV_NAME": env_name, "ANNEAL_LR": True,
        "DEBUG": False,
    }


def rejax_config(env_name: str, total_timesteps: float | None) -> dict:
    """rejax 0.1.3's own PPO config for CartPole-v1 (its configs/gymnax/cartpole.yaml; what the yaml leaves out takes
    rejax's defaults: 64x64 networks, no normalisation, constant learning rate), under PureJaxRL's key names."""
    if env_name != "CartPole-v1":
        raise SystemExit(f"--rejax-python: only rejax's CartPole-v1 config is set up here, not {env_name!r}")
    return {
        "LR": 7.5e-4, "NUM_ENVS": 5, "NUM_STEPS": 100, "TOTAL_TIMESTEPS": total_timesteps or 1e5, "UPDATE_EPOCHS": 5,
        "NUM_MINIBATCHES": 5, "GAMMA": 0.99, "GAE_LAMBDA": 0.95, "CLIP_EPS": 0.2, "ENT_COEF": 0.01, "VF_COEF": 0.5,
        "MAX_GRAD_NORM": 0.5, "ACTIVATION": "tanh", "ENV_NAME": env_name, "ANNEAL_LR": False, "EVAL_FREQ": 1000,
    }


def config_of(family: str, env_name: str, total_timesteps: float | None) -> dict:
    """The config both sides run: PureJaxRL's default ("purejaxrl", also for a baseline) or rejax's ("rejax")."""
    return (rejax_config if family == "rejax" else peer_config)(env_name, total_timesteps)


def our_config(peer: dict):
    """The same run as a `PPOConfig` (imported here: a worker process imports only what its side needs)."""
    from purejaxppo import PPOConfig

    return PPOConfig(
        env_name=peer["ENV_NAME"], num_envs=peer["NUM_ENVS"], num_steps=peer["NUM_STEPS"],
        total_timesteps=int(peer["TOTAL_TIMESTEPS"]), update_epochs=peer["UPDATE_EPOCHS"],
        num_minibatches=peer["NUM_MINIBATCHES"], learning_rate=peer["LR"], anneal_lr=peer["ANNEAL_LR"],
        gamma=peer["GAMMA"], gae_lambda=peer["GAE_LAMBDA"], clip_param=peer["CLIP_EPS"], vf_coeff=peer["VF_COEF"],
        entropy_coeff=peer["ENT_COEF"], max_grad_norm=peer["MAX_GRAD_NORM"], network="mlp", hidden_sizes=(64, 64),
        activation=peer["ACTIVATION"],
    )


def steps_per_seed(peer: dict) -> int:
    batch = peer["NUM_ENVS"] * peer["NUM_STEPS"]
    return int(peer["TOTAL_TIMESTEPS"]) // batch * batch


# ------------------------------------------------------------------------------------------------------- workers
def timed(fn, args) -> tuple[object, float, float]:
    """``(output, compile seconds, run seconds)`` of ``jax.jit(fn)``: compiled once, then called once."""
    import jax

    t0 = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    t1 = time.perf_counter()
    out = jax.block_until_ready(compiled(*args))
    return out, t1 - t0, time.perf_counter() - t1


def worker_purejaxppo(env_name: str, seeds: int, total: float | None, api: str = "vmap",
                      family: str = "purejaxrl") -> dict:
    """purejaxppo by `api`: ``jax.jit(jax.vmap(make_train))`` on one device, or `sweep` over every device."""
    import jax
    import numpy as np

    import purejaxppo
    from purejaxppo import make_train, sweep

    peer = config_of(family, env_name, total)
    config = our_config(peer)
    if api == "sweep":
        t0 = time.perf_counter()
        sweep(config, num_seeds=seeds, seed=42)  # compiles, then trains
        t1 = time.perf_counter()
        result = sweep(config, num_seeds=seeds, seed=42)  # the cached program: training alone
        run_s = time.perf_counter() - t1
        compile_s, returns = (t1 - t0) - run_s, result.metrics["episode_return"][:, -10:]
    else:
        keys = jax.random.split(jax.random.key(42), seeds)
        out, compile_s, run_s = timed(jax.vmap(make_train(config)), (keys,))
        returns = np.asarray(out.metrics["episode_return"])[:, -10:]
    return {"side": "purejaxppo", "api": api, "devices": len(jax.devices()), "version": purejaxppo.__version__,
            "source": repo_relative(Path(purejaxppo.__file__).parent), "compile_s": compile_s, "run_s": run_s,
            "steps_per_s": seeds * steps_per_seed(peer) / run_s, "final_return": float(np.nanmean(returns))}


def _gymnax_five_tuple_view() -> None:
    """Make `gymnax.make` return environments whose `step` has gymnax 0.0.x's 5 values (done = terminated | truncated),
    when gymnax is 1.0 or later; stub brax and navix, which PureJaxRL's wrappers import but these runs never use."""
    for name in ("brax", "brax.envs", "brax.envs.wrappers", "brax.envs.wrappers.training", "navix"):
        try:
            __import__(name)
        except ImportError:
            sys.modules[name] = types.ModuleType(name)
    training = sys.modules["brax.envs.wrappers.training"]
    for name in ("EpisodeWrapper", "AutoResetWrapper"):
        if not hasattr(training, name):
            setattr(training, name, object)
    sys.modules["brax"].envs = sys.modules["brax.envs"]
    sys.modules["brax.envs"].wrappers = sys.modules["brax.envs.wrappers"]
    sys.modules["brax.envs.wrappers"].training = training

    import gymnax
    import jax

    make = gymnax.make

    class FiveTuple:
        def __init__(self, env):
            self._env = env

        def __getattr__(self, name):
            return getattr(self._env, name)

        def step(self, key, state, action, params=None):
            obs, state, reward, terminated, truncated, info = self._env.step(key, state, action, params)
            info = {k: v for k, v in info.items() if k != "final_observation"}
            return obs, state, reward, terminated | truncated, info

    def make_old_api(name, **kwargs):
        env, params = make(name, **kwargs)
        out = jax.eval_shape(lambda k: env.step(k, env.reset(k, params)[1], 0, params), jax.random.PRNGKey(0))
        return (FiveTuple(env) if len(out) == 6 else env), params

    gymnax.make = make_old_api


def worker_purejaxrl(env_name: str, seeds: int, total: float | None, purejaxrl_dir: str) -> dict:
    _gymnax_five_tuple_view()
    sys.path.insert(0, str(Path(purejaxrl_dir) / "purejaxrl"))
    import jax
    import numpy as np
    from ppo import make_train

    peer = peer_config(env_name, total)
    keys = jax.random.split(jax.random.PRNGKey(42), seeds)
    out, compile_s, run_s = timed(jax.vmap(make_train(peer)), (keys,))
    returns = np.asarray(out["metrics"]["returned_episode_returns"])[:, -10:]  # [seeds, updates, steps, envs]
    return {"side": "purejaxrl", "source": repo_relative(purejaxrl_dir), "compile_s": compile_s,
            "run_s": run_s, "steps_per_s": seeds * steps_per_seed(peer) / run_s, "final_return": float(returns.mean())}


def worker_rejax(env_name: str, seeds: int, total: float | None) -> dict:
    """rejax's PPO with its own config: ``jax.jit(jax.vmap(algo.train))``, its in-training evaluation off; the final
    return is its default evaluation (128 episodes, sampled actions, mean over seeds) run once after the timing."""
    from importlib.metadata import version

    import jax
    import rejax

    peer = rejax_config(env_name, total)
    algo = rejax.PPO.create(
        env=env_name, num_envs=peer["NUM_ENVS"], num_steps=peer["NUM_STEPS"], num_epochs=peer["UPDATE_EPOCHS"],
        num_minibatches=peer["NUM_MINIBATCHES"], learning_rate=peer["LR"], max_grad_norm=peer["MAX_GRAD_NORM"],
        total_timesteps=int(peer["TOTAL_TIMESTEPS"]), eval_freq=peer["EVAL_FREQ"], gamma=peer["GAMMA"],
        gae_lambda=peer["GAE_LAMBDA"], clip_eps=peer["CLIP_EPS"], ent_coef=peer["ENT_COEF"], vf_coef=peer["VF_COEF"],
        agent_kwargs={"activation": peer["ACTIVATION"], "hidden_layer_sizes": (64, 64)},
    )
    evaluate = algo.eval_callback
    algo = algo.replace(eval_callback=lambda algo, ts, rng: (), skip_initial_evaluation=True)
    keys = jax.random.split(jax.random.PRNGKey(42), seeds)
    (state, _), compile_s, run_s = timed(jax.vmap(algo.train), (keys,))
    trained = int(state.global_step[0])  # rejax rounds the budget up to whole evaluation blocks
    _, returns = jax.jit(jax.vmap(lambda ts: evaluate(algo, ts, ts.rng)))(state)
    return {"side": "rejax", "version": version("rejax"), "compile_s": compile_s, "run_s": run_s,
            "steps_per_s": seeds * trained / run_s, "final_return": float(returns.mean())}


def worker_env(env_name: str, seeds: int, total: float | None, family: str = "purejaxrl") -> dict:
    """The environment alone: random actions, one jitted scan, num_envs x seeds environments, the same steps."""
    import gymnax
    import jax

    peer = config_of(family, env_name, total)
    env, params = gymnax.make(env_name)
    num_envs, num_steps = peer["NUM_ENVS"] * seeds, steps_per_seed(peer) // peer["NUM_ENVS"]

    def run(key):
        _, state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(key, num_envs), params)

        def step(state, t):
            k_act, k_env = jax.random.split(jax.random.fold_in(key, t))
            action = jax.vmap(env.action_space(params).sample)(jax.random.split(k_act, num_envs))
            out = jax.vmap(env.step, in_axes=(0, 0, 0, None))(jax.random.split(k_env, num_envs), state, action, params)
            return out[1], out[2].sum()

        return jax.lax.scan(step, state, jax.numpy.arange(num_steps))[1].sum()

    _, compile_s, run_s = timed(run, (jax.random.PRNGKey(0),))
    return {"side": "env", "compile_s": compile_s, "run_s": run_s, "steps_per_s": num_envs * num_steps / run_s}


# -------------------------------------------------------------------------------------------------------- driver
def documented_api(seeds: int) -> str:
    """How the README trains `seeds` seeds: `make_train` (vmapped, as PureJaxRL's runner does) for one, `sweep` for
    several."""
    return "vmap" if seeds == 1 else "sweep"


def family_of(args) -> str:
    """Whose config the run uses: rejax's when rejax is the peer, PureJaxRL's otherwise."""
    return "rejax" if args.rejax_python else "purejaxrl"


def run_worker(side: str, args, seeds: int) -> dict:
    """One fresh process for one side ("purejaxppo", "purejaxppo-vmap", "baseline", "purejaxrl", "rejax" or "env");
    returns its JSON line."""
    worker = {"purejaxppo-vmap": "purejaxppo", "baseline": "purejaxppo"}.get(side, side)
    python = args.rejax_python if side == "rejax" else sys.executable
    cmd = [python, str(Path(__file__).resolve()), "--worker", worker, "--env", args.env, "--seeds", str(seeds),
           "--config-of", family_of(args)]
    if args.total_timesteps:
        cmd += ["--total-timesteps", str(args.total_timesteps)]
    env = dict(os.environ)
    if side == "purejaxrl":
        cmd += ["--purejaxrl-dir", args.purejaxrl_dir]
    if worker == "purejaxppo":
        api = "vmap" if side == "purejaxppo-vmap" else documented_api(seeds)
        cmd += ["--api", api]
        if api == "sweep":
            env.setdefault("JAX_NUM_CPU_DEVICES", str(os.cpu_count()))  # one device per core (CPU only)
        source = args.baseline_dir if side == "baseline" else ROOT
        env["PYTHONPATH"] = os.pathsep.join([str(Path(source).resolve()), env.get("PYTHONPATH", "")])
    return json_line(cmd, env, f"{side} worker")


def json_line(cmd: list[str], env: dict, what: str) -> dict:
    """Run `cmd` (a worker process) and return the last JSON line it printed; SystemExit with its stderr if none."""
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"{what} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1])


def git_commit(path: Path) -> str:
    try:
        out = subprocess.run(["git", "-C", str(path), "describe", "--always", "--dirty"], capture_output=True,
                             text=True, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"


def summarize(case: dict, side: str = "purejaxppo") -> dict:
    """Pair-by-pair ratios of `side` (purejaxppo's documented path, or "purejaxppo-vmap") against the peer."""
    ours = [p[side] for p in case["pairs"]]
    peer = [p["peer"] for p in case["pairs"]]
    ratios = [o["steps_per_s"] / p["steps_per_s"] for o, p in zip(ours, peer)]
    med = lambda rows, key: statistics.median(r[key] for r in rows)  # noqa: E731
    return {
        "api": ours[0].get("api", "vmap"), "devices": ours[0].get("devices", 1),
        "ratio_per_pair": [round(r, 3) for r in ratios], "median_ratio": round(statistics.median(ratios), 3),
        "purejaxppo": {k: med(ours, k) for k in ("steps_per_s", "compile_s", "final_return")},
        "peer": {k: med(peer, k) for k in ("steps_per_s", "compile_s", "final_return")},
    }


def markdown(report: dict) -> str:
    peer = report["peer"]
    lines = [
        f"# purejaxppo vs {peer['name']}, side by side ({report['device']}, {report['date']})", "",
        f"purejaxppo {report['purejaxppo_commit']} against {peer['name']} {peer['commit']}; jax {report['jax']}. "
        f"{report['pairs']} alternating pairs of fresh processes per case; ratios are purejaxppo / {peer['name']} "
        "env steps per second, pair by pair. Medians over the pairs; return = mean episode return over the last 10 "
        "updates and the seeds" + (" (rejax: its own evaluation after training, 128 episodes with sampled actions)"
                                  if peer["name"] == "rejax" else "") + ".",
        "", f"Config (both sides): {json.dumps(report['config'])}.", "",
        f"| case | purejaxppo steps/s | {peer['name']} steps/s | ratio per pair | median ratio | compile s (ours / "
        f"peer) | final return (ours / peer) | env-only ceiling steps/s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for case in report["cases"]:
        for s in [case["summary"], *([case["summary_vmap"]] if "summary_vmap" in case else [])]:
            how = ("jax.vmap(make_train)" if s["api"] == "vmap" else f"sweep over {s['devices']} CPU devices")
            lines.append(
            f"| {case['env']}, {case['seeds']} seed{'s' if case['seeds'] > 1 else ''}, {how} "
            f"| {s['purejaxppo']['steps_per_s']:,.0f} | {s['peer']['steps_per_s']:,.0f} "
            f"| {', '.join(f'{r:.2f}' for r in s['ratio_per_pair'])} | **{s['median_ratio']:.2f}** "
            f"| {s['purejaxppo']['compile_s']:.1f} / {s['peer']['compile_s']:.1f} "
            f"| {s['purejaxppo']['final_return']:.1f} / {s['peer']['final_return']:.1f} "
            f"| {case['env_only']['steps_per_s']:,.0f} |"
            )
    return "\n".join(lines) + "\n"


def rejax_peer(python: str) -> dict:
    """The rejax peer's description: its interpreter must exist and import rejax; the version it has."""
    proc = subprocess.run([python, "-c", "from importlib.metadata import version; print(version('rejax'), "
                           "version('gymnax'))"], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"--rejax-python {python}: cannot import rejax there ({proc.stderr.strip()[-300:]}); make "
                         f"the venv with: pip install rejax=={REJAX_VERSION} gymnax==0.0.9 jax==0.9.2 jaxlib==0.9.2")
    rejax, gymnax = proc.stdout.split()
    return {"name": "rejax", "commit": f"{rejax} (gymnax {gymnax})"}


def device_label() -> str:
    import jax

    device = jax.devices()[0]
    if device.platform == "cpu":
        return f"cpu-{os.cpu_count()}core"
    return device.device_kind.lower().replace(" ", "-")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    against = ap.add_mutually_exclusive_group()
    against.add_argument("--purejaxrl-dir", help=f"a PureJaxRL checkout (git clone; checkout {PUREJAXRL_COMMIT})")
    against.add_argument("--baseline-dir", help="another purejaxppo checkout to compare with (e.g. a git worktree "
                                                "of the previous commit)")
    against.add_argument("--rejax-python", help=f"the python of a venv with rejax {REJAX_VERSION} (and gymnax 0.0.9): "
                                                "compare at rejax's own CartPole-v1 config")
    ap.add_argument("--env", default="CartPole-v1", help="gymnax environment id (default CartPole-v1)")
    ap.add_argument("--seeds", default="1,8", help="comma-separated seed counts (default 1,8)")
    ap.add_argument("--pairs", type=int, default=3, help="alternating pairs per case (default 3)")
    ap.add_argument("--total-timesteps", type=float, default=None, help="per seed (default: PureJaxRL's)")
    ap.add_argument("--also-vmap", action="store_true",
                    help="for several seeds, also run purejaxppo's jax.vmap path on one device in every pair")
    ap.add_argument("--out", type=Path, default=RESULTS, help="results directory")
    ap.add_argument("--worker", choices=("purejaxppo", "purejaxrl", "rejax", "env"), help=argparse.SUPPRESS)
    ap.add_argument("--config-of", choices=("purejaxrl", "rejax"), default="purejaxrl", help=argparse.SUPPRESS)
    ap.add_argument("--api", choices=("vmap", "sweep"), default="vmap", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.worker:  # one side, in a fresh process: print one JSON line
        seeds = int(args.seeds)
        if args.worker == "purejaxrl":
            row = worker_purejaxrl(args.env, seeds, args.total_timesteps, args.purejaxrl_dir)
        elif args.worker == "rejax":
            row = worker_rejax(args.env, seeds, args.total_timesteps)
        elif args.worker == "purejaxppo":
            row = worker_purejaxppo(args.env, seeds, args.total_timesteps, args.api, args.config_of)
        else:
            row = worker_env(args.env, seeds, args.total_timesteps, args.config_of)
        print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
        return
    if not (args.purejaxrl_dir or args.baseline_dir or args.rejax_python):
        ap.error("name the peer: --purejaxrl-dir DIR (PureJaxRL), --rejax-python PY (rejax) or --baseline-dir DIR "
                 "(another purejaxppo)")
    if args.pairs < 1:
        ap.error("--pairs must be >= 1")
    import jax

    if args.rejax_python:
        peer_side, peer = "rejax", rejax_peer(args.rejax_python)
        rejax_config(args.env, None)  # only CartPole: says so before anything runs
    else:
        peer_side = "purejaxrl" if args.purejaxrl_dir else "baseline"
        peer_dir = Path(args.purejaxrl_dir or args.baseline_dir)
        if not peer_dir.is_dir():
            ap.error(f"{peer_dir} is not a directory")
        peer = {"name": "PureJaxRL" if peer_side == "purejaxrl" else "baseline purejaxppo",
                "dir": repo_relative(peer_dir), "commit": git_commit(peer_dir)}
    device = device_label()
    report = {
        "date": datetime.date.today().isoformat(), "device": device, "jax": jax.__version__,
        "load_average_at_start": os.getloadavg(), "purejaxppo_commit": git_commit(ROOT), "pairs": args.pairs,
        "peer": peer, "config": config_of(family_of(args), args.env, args.total_timesteps), "cases": [],
    }
    stem = f"{ {'purejaxrl': 'peers', 'rejax': 'peers-rejax'}.get(peer_side, 'baseline')}-{device}"
    args.out.mkdir(parents=True, exist_ok=True)
    for seeds in (int(s) for s in args.seeds.split(",")):
        case = {"env": args.env, "seeds": seeds, "pairs": []}
        report["cases"].append(case)
        ours = ["purejaxppo", *(["purejaxppo-vmap"] if args.also_vmap and seeds > 1 else [])]
        for i in range(args.pairs):
            order = (*ours, peer_side) if i % 2 == 0 else (peer_side, *ours[::-1])
            pair = {}
            for side in order:
                row = run_worker(side, args, seeds)
                pair["peer" if side == peer_side else side] = row
                print(f"{args.env} x{seeds} pair {i + 1}/{args.pairs} {side:15s} {row['steps_per_s']:>12,.0f} "
                      f"steps/s  compile {row['compile_s']:5.1f} s  return {row['final_return']:.1f}", flush=True)
            case["pairs"].append(pair)
        case["env_only"] = run_worker("env", args, seeds)
        case["summary"] = summarize(case)
        if len(ours) > 1:
            case["summary_vmap"] = summarize(case, "purejaxppo-vmap")
        print(f"{args.env} x{seeds}: median ratio {case['summary']['median_ratio']:.2f} "
              f"(pairs {case['summary']['ratio_per_pair']}); env-only {case['env_only']['steps_per_s']:,.0f} "
              "steps/s", flush=True)
        (args.out / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")  # saved after every case
        (args.out / f"{stem}.md").write_text(markdown(report))
    print(f"wrote {args.out / stem}.json and .md")


if __name__ == "__main__":
    main()
