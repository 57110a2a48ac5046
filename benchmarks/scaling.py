"""Scaling of `purejaxppo.sweep`: env steps per second and peak memory versus seeds, and versus devices.

    python benchmarks/scaling.py                                   # CPU defaults: seeds 1..256, devices 1,2,4
    python benchmarks/scaling.py --seeds 1,16,64,256,1024,2048     # on a GPU (the full 500k-step budget)
    python benchmarks/scaling.py --seeds none --devices none --max-seeds --max-seeds-start 50000   # then add the
                                                                   # most seeds one GPU holds to that report

Config: PureJaxRL's CartPole-v1 PPO (4 envs x 128 steps, 4 epochs x 4 minibatches, 500k steps), whose 2048 agents
run at about 10M env steps/s on an A100. On a CPU the budget is cut to --total-timesteps (default 10 updates = 5,120
steps per seed) so the whole benchmark finishes in a few minutes; that is recorded in the JSON and printed.

Every measurement runs in a fresh subprocess, so peak memory belongs to that one measurement: the device's
``peak_bytes_in_use`` where `device.memory_stats()` reports it (GPU), otherwise the process's peak resident set size
(``resource.getrusage``: Python, XLA, the compiler and the arrays; "per seed" then subtracts the RSS measured after
imports). Time: the first `sweep` call compiles; the median of --repeats further calls (the cached program, including
moving inputs and results to and from the host) gives steps/s = seeds x steps per seed / seconds.

Devices: on CPU, D devices are forced host devices (XLA_FLAGS=--xla_force_host_platform_device_count=D) sharing the
machine's cores, so this shows the sharding's overhead rather than a speed-up; on GPUs, CUDA_VISIBLE_DEVICES selects D.
Most seeds on one device (--max-seeds, accelerators only): the seed count is multiplied by --max-seeds-growth from
--max-seeds-start while a sweep of --max-seeds-timesteps steps per seed runs, then bisects between the last count that
ran and the first that ran out of device memory (XLA's RESOURCE_EXHAUSTED) to within --max-seeds-tolerance, each
count in a fresh process with preallocation off and --max-seeds-mem-fraction of the memory allowed. Memory per seed
does not grow with the number of updates (metrics are aggregated per update on the device), so a short budget finds
the same limit as a full one.
Results: benchmarks/results/scaling-<device>.json and .png.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
PUREJAXRL_A100_STEPS_PER_S = 10e6  # PureJaxRL's 2048 CartPole agents on one A100 (the target on an H100)
CPU_TOTAL_TIMESTEPS = 5_120  # 10 updates of 512 steps per seed
FULL_TOTAL_TIMESTEPS = 500_000
MAX_SEEDS_TIMESTEPS = 5_120  # steps per seed while searching for the most seeds that fit (10 updates)
OOM_MARKERS = ("RESOURCE_EXHAUSTED", "Out of memory", "out of memory", "OUT_OF_MEMORY")
# PureJaxRL's CartPole-v1 PPO settings (the rest are PPOConfig's defaults, which match them)
CONFIG = {"env_name": "CartPole-v1", "num_envs": 4, "num_steps": 128, "update_epochs": 4, "num_minibatches": 4}


# ------------------------------------------------------------------------------------------------ worker (subprocess)
def _rss_bytes() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def worker(spec: dict) -> dict:
    """One measurement: `spec["num_seeds"]` seeds of `spec["config"]` on every visible device."""
    import jax
    import numpy as np

    from purejaxppo import PPOConfig, sweep

    config = PPOConfig.from_dict(spec["config"])
    num_seeds, repeats = spec["num_seeds"], spec["repeats"]
    device = jax.devices()[0]
    baseline_rss = _rss_bytes()
    start = time.perf_counter()
    result = sweep(config, num_seeds=num_seeds)
    first_s = time.perf_counter() - start
    times = []
    for _ in range(repeats if first_s < 60 else 1):  # one timed call when a call takes minutes
        start = time.perf_counter()
        result = sweep(config, num_seeds=num_seeds)
        times.append(time.perf_counter() - start)
    run_s = statistics.median(times) if times else first_s  # repeats=0: the compiling call alone
    stats = device.memory_stats() or {}
    if "peak_bytes_in_use" in stats:
        peak, source, baseline = int(stats["peak_bytes_in_use"]), "device peak_bytes_in_use", 0
    else:
        peak, source, baseline = _rss_bytes(), "process peak RSS (resource.getrusage)", baseline_rss
    returns = result.metrics["episode_return"][:, -min(10, config.num_updates):]
    return {
        "num_seeds": num_seeds,
        "num_devices": len(jax.devices()),
        "platform": device.platform,
        "device_kind": device.device_kind,
        "jax_version": jax.__version__,
        "first_call_s": first_s,
        "compile_s_approx": first_s - run_s,
        "run_s": times,
        "run_s_median": run_s,
        "env_steps": num_seeds * config.timesteps_trained,
        "steps_per_s": num_seeds * config.timesteps_trained / run_s,
        "peak_memory_bytes": peak,
        "peak_memory_per_seed_bytes": (peak - baseline) / num_seeds,
        "memory_source": source,
        "final_return_mean": float(np.nanmean(returns)) if np.isfinite(returns).any() else None,
    }


# --------------------------------------------------------------------------------------------------- orchestration
def device_tag(platform: str, device_kind: str) -> str:
    if platform == "cpu":
        return f"cpu-{os.cpu_count()}core"
    return "-".join(device_kind.lower().replace("_", " ").split())


class OutOfMemory(RuntimeError):
    """A worker ran out of device memory."""


def run_worker(spec: dict, devices: int | None, platform: str | None, timeout: int) -> dict:
    """Run `worker(spec)` in a fresh Python with `devices` devices visible (None: all)."""
    env = dict(os.environ)
    if devices is not None and platform == "cpu":
        env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={devices}".strip()
    elif devices is not None:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in range(devices))
    out = subprocess.run(
        [sys.executable, __file__, "--worker", json.dumps(spec)],
        env=env, capture_output=True, text=True, timeout=timeout, check=False,
    )
    lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    if out.returncode != 0 or not lines:
        if any(marker in out.stderr for marker in OOM_MARKERS):
            raise OutOfMemory(f"{spec['num_seeds']} seeds do not fit: {out.stderr.strip().splitlines()[-1][:300]}")
        raise RuntimeError(f"worker {spec['num_seeds']} seeds / {devices} devices failed:\n{out.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def find_max_seeds(fits, start: int, limit: int = 2**24, tolerance: float = 0.05, growth: float = 2.0
                   ) -> tuple[int, int | None, list]:
    """The largest seed count n with ``fits(n)``, assuming fitting is monotone (fewer seeds never need more memory).

    Multiplies `start` by `growth` until a count does not fit (or `limit` is reached), then bisects until the gap
    between the largest count that fits and the smallest that does not is at most `tolerance` of the former. Returns
    ``(largest_fitting, smallest_failing or None, [(n, fits), ...] in the order tried)``; largest_fitting is 0 when
    not even `start` fits. A `start` near the answer (from the memory per seed measured by the seeds sweep) and a
    small `growth` need the fewest tries.
    """
    if growth <= 1.0:
        raise ValueError(f"growth must be > 1, got {growth}")
    tried = []

    def check(n: int) -> bool:
        ok = bool(fits(n))
        tried.append((n, ok))
        return ok

    lo, hi, n = 0, None, start  # invariant: lo fits (0 trivially), hi does not
    while n <= limit:
        if not check(n):
            hi = n
            break
        lo, n = n, max(n + 1, int(n * growth))
    if hi is None:
        return lo, None, tried
    while hi - lo > max(1, tolerance * lo):
        mid = (lo + hi) // 2
        if check(mid):
            lo = mid
        else:
            hi = mid
    return lo, hi, tried


def probe() -> dict:
    """The backend of a fresh process (the parent never starts XLA, so it holds no GPU memory)."""
    code = ("import jax, json; d = jax.devices()[0]; print(json.dumps({'platform': d.platform, "
            "'device_kind': d.device_kind, 'count': len(jax.devices()), 'jax': jax.__version__}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    seeds = report["by_seeds"]
    x = [r["num_seeds"] for r in seeds]
    axes[0].plot(x, [r["steps_per_s"] for r in seeds], "o-", label="purejaxppo.sweep")
    if report["platform"] != "cpu":
        axes[0].axhline(PUREJAXRL_A100_STEPS_PER_S, color="grey", ls="--", label="PureJaxRL 2048 agents, A100")
    axes[0].set(xscale="log", yscale="log", xlabel="seeds (one device)", ylabel="env steps / s",
                title="Throughput vs seeds")
    axes[0].legend()
    axes[1].plot(x, [r["peak_memory_per_seed_bytes"] / 2**20 for r in seeds], "o-", label="peak / seeds")
    marginal = [(r["num_seeds"], r["marginal_memory_per_seed_bytes"]) for r in seeds
                if r.get("marginal_memory_per_seed_bytes")]
    if marginal:
        axes[1].plot(*zip(*[(k, m / 2**20) for k, m in marginal]), "s--", label="marginal (vs fewest seeds)")
    axes[1].legend()
    axes[1].set(xscale="log", yscale="log", xlabel="seeds", ylabel="MiB per seed",
                title=f"Peak memory per seed\n({seeds[0]['memory_source']})")
    devices, most = report["by_devices"], report.get("max_seeds")
    if devices or not most:
        d = [r["num_devices"] for r in devices]
        axes[2].plot(d, [r["steps_per_s"] for r in devices], "o-")
        axes[2].set_xticks(d)
        axes[2].set(xlabel="devices", ylabel="env steps / s",
                    title=f"Throughput vs devices ({report['devices_num_seeds']} seeds)")
    else:  # one device: the search for the most seeds it holds
        for i, t in enumerate(most["tried"]):
            axes[2].plot(i + 1, t["num_seeds"], "o" if t["fits"] else "x", color="C2" if t["fits"] else "C3",
                         label="fits" if t["fits"] else "out of memory")
        axes[2].axhline(most["num_seeds"], color="C2", ls="--", lw=1, label=f"most that fit: {most['num_seeds']:,}")
        handles, labels = axes[2].get_legend_handles_labels()
        unique = dict(zip(labels, handles))  # one legend entry per label
        axes[2].legend(unique.values(), unique.keys())
        axes[2].set(xlabel="try", ylabel="seeds", title=f"Most seeds on one device "
                    f"({most['steps_per_seed']:,} steps each)")
    budget = report["config"]["total_timesteps"]
    fig.suptitle(f"{report['device']}, jax {report['jax_version']}, CartPole-v1, {budget:,} steps per seed")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def max_seeds_report(config: dict, args) -> dict:
    """Search for the most seeds of `config` (at --max-seeds-timesteps per seed) that run on one device."""
    search_config = dict(config, total_timesteps=args.max_seeds_timesteps)
    peaks = {}
    # JAX preallocates 75% of GPU memory by default and never uses more; allocating on demand up to
    # --max-seeds-mem-fraction lets a worker use (nearly) all of it.
    os.environ["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
    os.environ["XLA_PYTHON_CLIENT_MEM_FRACTION"] = str(args.max_seeds_mem_fraction)

    def fits(n: int) -> bool:
        try:
            r = run_worker({"config": search_config, "num_seeds": n, "repeats": 0}, 1, "gpu", args.timeout)
        except OutOfMemory as err:
            print(f"  {n:8d} seeds: out of memory ({err})", flush=True)
            return False
        peaks[n] = r["peak_memory_bytes"]
        print(f"  {n:8d} seeds: fit, peak {r['peak_memory_bytes'] / 2**30:.2f} GiB, "
              f"{r['steps_per_s']:,.0f} steps/s (first call, compile included)", flush=True)
        return True

    print(f"searching for the most seeds on one device from {args.max_seeds_start}", flush=True)
    largest, failing, tried = find_max_seeds(fits, args.max_seeds_start, tolerance=args.max_seeds_tolerance,
                                             growth=args.max_seeds_growth)
    print(f"  most seeds that fit: {largest:,} (first failing: {failing})", flush=True)
    return {
        "num_seeds": largest,
        "first_failing": failing,
        "steps_per_seed": search_config["total_timesteps"],
        "tolerance": args.max_seeds_tolerance,
        "mem_fraction": args.max_seeds_mem_fraction,
        "peak_memory_bytes": peaks.get(largest),
        "peak_memory_per_seed_bytes": peaks[largest] / largest if largest in peaks else None,
        "tried": [{"num_seeds": n, "fits": ok} for n, ok in tried],
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default=None, help="comma-separated seed counts (CPU default 1,4,16,64,256; "
                        "GPU default 1,16,64,256,1024,2048)")
    parser.add_argument("--devices", default=None, help="comma-separated device counts (CPU default 1,2,4; "
                        "GPU default 1..all in powers of 2); 'none' skips")
    parser.add_argument("--devices-seeds", type=int, default=None, help="seeds for the devices sweep "
                        "(default: the largest of --seeds that divides by every device count; at most 64 on CPU)")
    parser.add_argument("--total-timesteps", type=int, default=None,
                        help=f"steps per seed (CPU default {CPU_TOTAL_TIMESTEPS:,}, "
                        f"GPU default {FULL_TOTAL_TIMESTEPS:,})")
    parser.add_argument("--max-seeds", action="store_true", help="also find the most seeds one device holds "
                        "(accelerators only)")
    parser.add_argument("--max-seeds-start", type=int, default=2048)
    parser.add_argument("--max-seeds-growth", type=float, default=2.0, help="factor between seed counts tried "
                        "before the first that does not fit")
    parser.add_argument("--max-seeds-tolerance", type=float, default=0.05)
    parser.add_argument("--max-seeds-mem-fraction", type=float, default=0.95, help="the share of device memory "
                        "a worker may use in the search (JAX's own default is 0.75)")
    parser.add_argument("--max-seeds-timesteps", type=int, default=MAX_SEEDS_TIMESTEPS)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--timeout", type=int, default=900, help="seconds per measurement")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker is not None:
        print("RESULT " + json.dumps(worker(json.loads(args.worker))), flush=True)
        return {}

    backend = probe()
    platform = backend["platform"]
    on_cpu = platform == "cpu"
    if args.max_seeds and on_cpu:
        parser.error("--max-seeds needs an accelerator: on CPU the seeds share the host's RAM, and running out of it "
                     "ends in the kernel's OOM killer rather than an error")
    seeds_arg = args.seeds or ("1,4,16,64,256" if on_cpu else "1,16,64,256,1024,2048")
    seeds = [] if seeds_arg == "none" else [int(s) for s in seeds_arg.split(",")]
    if args.devices == "none":
        devices = []
    elif args.devices:
        devices = [int(d) for d in args.devices.split(",")]
    else:
        count = backend["count"]
        devices = [1, 2, 4] if on_cpu else [2**i for i in range(count.bit_length()) if 2**i <= count]
    total = args.total_timesteps or (CPU_TOTAL_TIMESTEPS if on_cpu else FULL_TOTAL_TIMESTEPS)

    # A plain dict: building a PPOConfig here would import gymnax, which starts XLA (and takes GPU memory).
    config = dict(CONFIG, total_timesteps=total)
    batch = config["num_envs"] * config["num_steps"]
    steps_per_seed = total // batch * batch
    note = (f"budget reduced to {steps_per_seed:,} steps per seed ({total // batch} updates) so the benchmark "
            f"finishes in minutes on this machine" if total < FULL_TOTAL_TIMESTEPS else "full budget")
    print(f"backend: {backend}\nconfig: {config}\n{steps_per_seed:,} steps per seed ({note})", flush=True)

    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"scaling-{device_tag(platform, backend['device_kind'])}"
    if not seeds and not devices:  # --seeds none --devices none: add to the report already there
        if not path.with_suffix(".json").is_file():
            parser.error(f"--seeds none --devices none adds to {path}.json, which does not exist")
        report = json.loads(path.with_suffix(".json").read_text())
    else:
        report = {
            "device": device_tag(platform, backend["device_kind"]),
            "platform": platform,
            "device_kind": backend["device_kind"],
            "device_count": backend["count"],
            "cpu_count": os.cpu_count(),
            "jax_version": backend["jax"],
            "config": config,
            "steps_per_seed": steps_per_seed,
            "budget_note": note,
            "timing": f"median of {args.repeats} calls of sweep() after a first (compiling) call (1 call when a "
                      f"call takes over a minute)",
            "by_seeds": [],
            "devices_num_seeds": None,
            "by_devices": [],
            "reference": {"purejaxrl_2048_cartpole_a100_steps_per_s": PUREJAXRL_A100_STEPS_PER_S},
        }
    start, earlier_wall_s = time.perf_counter(), report.get("wall_s", 0.0)  # a report added to keeps its time

    def save() -> None:  # after every measurement, so a run cut short keeps what it measured
        for rows in (report["by_seeds"], report["by_devices"]):
            for r in rows:
                r["speedup_vs_first"] = r["steps_per_s"] / rows[0]["steps_per_s"]
        if report["by_seeds"]:
            report["memory_source"] = report["by_seeds"][0]["memory_source"]
            best = max(report["by_seeds"], key=lambda r: r["steps_per_s"])
            report["best"] = {"num_seeds": best["num_seeds"], "steps_per_s": best["steps_per_s"]}
            if not on_cpu:
                report["vs_purejaxrl_a100"] = best["steps_per_s"] / PUREJAXRL_A100_STEPS_PER_S
        report["wall_s"] = earlier_wall_s + time.perf_counter() - start
        path.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
        if report["by_seeds"]:
            plot(report, path.with_suffix(".png"))

    by_seeds = report["by_seeds"]
    for k in seeds:
        r = run_worker({"config": config, "num_seeds": k, "repeats": args.repeats}, None, platform,
                       args.timeout)
        if by_seeds:  # memory each added seed costs: the process's fixed costs cancel out
            r["marginal_memory_per_seed_bytes"] = max(
                0.0, (r["peak_memory_bytes"] - by_seeds[0]["peak_memory_bytes"]) / (k - by_seeds[0]["num_seeds"]))
        by_seeds.append(r)
        print(f"  {k:5d} seeds, {r['num_devices']} device(s): {r['steps_per_s']:>13,.0f} steps/s  "
              f"run {r['run_s_median']:.3f}s  compile ~{r['compile_s_approx']:.1f}s  "
              f"peak {r['peak_memory_bytes'] / 2**20:,.0f} MiB ({r['peak_memory_per_seed_bytes'] / 2**20:.2f} "
              f"MiB/seed)  return {r['final_return_mean']}", flush=True)
        save()
    if devices:
        divisible = [k for k in seeds if all(k % d == 0 for d in devices) and (k <= 64 or not on_cpu)]
        report["devices_num_seeds"] = args.devices_seeds or (max(divisible) if divisible else max(seeds))
    for d in devices:
        r = run_worker({"config": config, "num_seeds": report["devices_num_seeds"], "repeats": args.repeats}, d,
                       platform, args.timeout)
        report["by_devices"].append(r)
        print(f"  {report['devices_num_seeds']:5d} seeds, {d} device(s): {r['steps_per_s']:>13,.0f} steps/s  "
              f"run {r['run_s_median']:.3f}s", flush=True)
        save()
    if args.max_seeds:
        report["max_seeds"] = max_seeds_report(config, args)
        save()

    print("\nseeds  devices   steps/s      x first   peak MiB   marginal MiB/seed")
    for r in report["by_seeds"] + report["by_devices"]:
        marginal = r.get("marginal_memory_per_seed_bytes")
        print(f"{r['num_seeds']:5d}  {r['num_devices']:7d}  {r['steps_per_s']:>11,.0f}  {r['speedup_vs_first']:7.2f}  "
              f"{r['peak_memory_bytes'] / 2**20:9,.0f}   {'' if marginal is None else f'{marginal / 2**20:.2f}'}")
    print(f"saved {path}.json and .png ({report['wall_s']:.0f}s)")
    return report


if __name__ == "__main__":
    main()
