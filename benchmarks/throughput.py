"""Throughput: compile time, run time, env steps per second and peak memory of `make_train`.

Cases: CartPole-v1 with the default config at 1, 16 and 64 seeds (`jax.jit(jax.vmap(make_train(config)))`), and
Breakout-MinAtar with 64 envs x 128 steps (CNN). Prints a table and saves JSON under benchmarks/results/.

    python benchmarks/throughput.py                       # all cases, 3 timed runs each (1 for >= 64 seeds)
    python benchmarks/throughput.py --seeds 1 --repeats 5 --no-minatar
    python benchmarks/throughput.py --host-devices 2 --sweep-seeds 16,64   # + seeds sharded over 2 CPU devices

Compile time is `lower(...).compile()` (tracing included); run time is the median of the timed runs of the compiled
program (first-run effects excluded by timing a compiled executable). Peak memory is the GPU's `peak_bytes_in_use`
where the backend reports it, otherwise the process's peak resident set size (which includes Python and XLA itself).
These are purejaxppo's own figures; compare with PureJaxRL only side by side, with benchmarks/peers.py.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

# --host-devices must take effect before JAX starts: XLA:CPU runs one device's program mostly on one core, so one
# forced host device per core lets `sweep` (JAX's own sharding) use them all.
if "--host-devices" in sys.argv:
    _n = sys.argv[sys.argv.index("--host-devices") + 1]
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={_n}"

import jax  # noqa: E402
import numpy as np  # noqa: E402

from purejaxppo import PPOConfig, make_train, sweep  # noqa: E402
from returns import device_name  # noqa: E402  (benchmarks/returns.py, beside this script)

RESULTS = Path(__file__).parent / "results"


def peak_memory_bytes() -> tuple[int, str]:
    stats = jax.devices()[0].memory_stats() or {}
    if "peak_bytes_in_use" in stats:
        return int(stats["peak_bytes_in_use"]), "device peak_bytes_in_use"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "process peak RSS"


def measure(name: str, config: PPOConfig, num_seeds: int, repeats: int) -> dict:
    train = make_train(config)
    fn = jax.jit(jax.vmap(train)) if num_seeds > 1 else train
    keys = jax.random.split(jax.random.key(0), num_seeds) if num_seeds > 1 else jax.random.key(0)
    t0 = time.perf_counter()
    compiled = fn.lower(keys).compile()
    compile_s = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = jax.block_until_ready(compiled(keys))
        times.append(time.perf_counter() - t0)
    run_s = statistics.median(times)
    returns = np.asarray(out.metrics["episode_return"]).reshape(num_seeds, -1)
    steps = num_seeds * config.timesteps_trained
    peak, peak_kind = peak_memory_bytes()
    row = {
        "case": name,
        "env": config.env_name,
        "seeds": num_seeds,
        "num_envs": config.num_envs,
        "num_steps": config.num_steps,
        "env_steps": steps,
        "compile_s": round(compile_s, 2),
        "run_s_median": round(run_s, 3),
        "run_s_all": [round(t, 3) for t in times],
        "steps_per_s": round(steps / run_s),
        "mean_return_last10": float(np.nanmean(returns[:, -10:])),
        "peak_memory_mb": round(peak / 2**20, 1),
        "peak_memory_kind": peak_kind,
    }
    print(
        f"{name:28s} seeds {num_seeds:4d}  compile {compile_s:6.2f}s  run {run_s:7.2f}s  "
        f"{row['steps_per_s']:>11,} steps/s  return(last10) {row['mean_return_last10']:7.1f}  "
        f"peak {row['peak_memory_mb']:.0f} MB ({peak_kind})",
        flush=True,
    )
    return row


def measure_sweep(config: PPOConfig, num_seeds: int) -> dict:
    """`sweep(config, num_seeds)`: seeds sharded over every device; the first call compiles, the second is timed."""
    t0 = time.perf_counter()
    sweep(config, num_seeds=num_seeds)
    first_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    result = sweep(config, num_seeds=num_seeds)
    run_s = time.perf_counter() - t0
    steps = num_seeds * config.timesteps_trained
    peak, peak_kind = peak_memory_bytes()
    returns = np.asarray(result.metrics["episode_return"])
    row = {
        "case": f"sweep over {jax.device_count()} devices",
        "env": config.env_name,
        "seeds": num_seeds,
        "devices": jax.device_count(),
        "num_envs": config.num_envs,
        "num_steps": config.num_steps,
        "env_steps": steps,
        "compile_s": round(first_s - run_s, 2),
        "run_s_median": round(run_s, 3),
        "steps_per_s": round(steps / run_s),
        "mean_return_last10": float(np.nanmean(returns[..., -10:])),
        "peak_memory_mb": round(peak / 2**20, 1),
        "peak_memory_kind": peak_kind,
    }
    print(
        f"{row['case']:28s} seeds {num_seeds:4d}  compile {row['compile_s']:6.2f}s  run {run_s:7.2f}s  "
        f"{row['steps_per_s']:>11,} steps/s  return(last10) {row['mean_return_last10']:7.1f}  "
        f"peak {row['peak_memory_mb']:.0f} MB ({peak_kind})",
        flush=True,
    )
    return row


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="1,16,64", help="comma-separated seed counts for CartPole")
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed runs per case (1 for cases of >= 64 seeds and for MinAtar)")
    parser.add_argument("--no-minatar", action="store_true", help="skip the Breakout-MinAtar case")
    parser.add_argument("--minatar-updates", type=int, default=3, help="updates in the Breakout-MinAtar case")
    parser.add_argument("--host-devices", type=int, default=None,
                        help="split the CPU into this many XLA devices (set before JAX starts)")
    parser.add_argument("--sweep-seeds", default="", help="comma-separated seed counts run through `sweep`")
    parser.add_argument("--out", default=None, help="JSON path (default benchmarks/results/throughput-<device>.json)")
    args = parser.parse_args(argv)

    rows = []
    for n in (int(s) for s in args.seeds.split(",") if s):
        rows.append(measure("CartPole-v1 default", PPOConfig(), n, 1 if n >= 64 else args.repeats))
    for n in (int(s) for s in args.sweep_seeds.split(",") if s):
        rows.append(measure_sweep(PPOConfig(), n))
    if not args.no_minatar:
        minatar = PPOConfig(env_name="Breakout-MinAtar", network="cnn", num_envs=64, num_steps=128,
                            total_timesteps=64 * 128 * args.minatar_updates, num_minibatches=8, learning_rate=5e-4)
        rows.append(measure("Breakout-MinAtar 64x128", minatar, 1, 1))  # slow on a CPU: one timed run

    device = device_name()
    result = {
        "device": device,
        "device_kind": jax.devices()[0].device_kind,
        "device_count": jax.device_count(),
        "jax": jax.__version__,
        "python": platform.python_version(),
        "argv": sys.argv[1:],
        "date": time.strftime("%Y-%m-%d"),
        "rows": rows,
    }
    out = Path(args.out) if args.out else RESULTS / f"throughput-{device}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"saved {out}")


if __name__ == "__main__":
    main()
