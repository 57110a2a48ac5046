"""Seeds in blocks on a CPU: `sweep`'s steps/s at 16 and 256 seeds, all of a device's cells at once vs in blocks.

    python benchmarks/seed_blocks.py                       # CartPole-v1, 16 and 256 seeds, 3 alternating rounds
    python benchmarks/seed_blocks.py --seeds 16,64,256,1024 --rounds 2

On one CPU device `sweep` trains its cells in blocks of at most 32 (``lax.map`` over blocks, ``vmap`` inside). This
measures that against every cell at once (``cells_per_block`` larger than the cell count, the plain ``vmap``), each in
a fresh process, the two alternating round by round so that the machine's drift favours neither. Config: PureJaxRL's
CartPole-v1 (4 envs x 128 steps, 4 epochs x 4 minibatches) for --updates updates per seed. Time: the median of 3 calls
of the compiled sweep after a first (compiling) one. Prints a table; writes benchmarks/results/seed-blocks-<device>.json
and .md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peers import ROOT, device_label, git_commit, json_line  # noqa: E402  (benchmarks/peers.py: no JAX at import)

RESULTS = Path(__file__).parent / "results"
ALL_AT_ONCE = 1 << 30  # cells_per_block larger than any cell count: one plain vmap


def worker(seeds: int, block: int, updates: int) -> dict:
    import numpy as np

    from purejaxppo import PPOConfig, sweep

    config = PPOConfig(env_name="CartPole-v1", num_envs=4, num_steps=128, update_epochs=4, num_minibatches=4,
                       total_timesteps=512 * updates)
    sweep(config, num_seeds=seeds, cells_per_block=block)  # compiles
    times, result = [], None
    for _ in range(3):
        t0 = time.perf_counter()
        result = sweep(config, num_seeds=seeds, cells_per_block=block)
        times.append(time.perf_counter() - t0)
    run_s = statistics.median(times)
    return {"seeds": seeds, "cells_per_block": None if block == ALL_AT_ONCE else block, "run_s": run_s,
            "steps_per_s": seeds * config.timesteps_trained / run_s,
            "final_return": float(np.nanmean(result.metrics["episode_return"][:, -3:]))}


def run_worker(seeds: int, block: int, updates: int) -> dict:
    cmd = [sys.executable, __file__, "--worker", f"{seeds},{block},{updates}"]
    return json_line(cmd, {**os.environ, "JAX_NUM_CPU_DEVICES": "1"}, f"worker {seeds} seeds, block {block}")


def markdown(report: dict) -> str:
    lines = [f"# Seeds in blocks on one CPU device ({report['device']}, {report['date']})", "",
             f"`{report['command']}`; jax {report['jax']}; purejaxppo {report['commit']}. CartPole-v1, PureJaxRL's "
             f"config, {report['updates']} updates per seed; {report['rounds']} alternating rounds of fresh processes, "
             "medians. Ratio = blocks / all at once, round by round.", "",
             "| seeds | all at once, steps/s | blocks of <= 32, steps/s | ratio per round | median ratio | "
             "return (all / blocks) |", "|---|---|---|---|---|---|"]
    for case in report["cases"]:
        flat, blocked = case["all_at_once"], case["blocks"]
        ratios = [b["steps_per_s"] / a["steps_per_s"] for a, b in zip(flat, blocked)]
        med = lambda rows: statistics.median(r["steps_per_s"] for r in rows)  # noqa: E731
        lines.append(f"| {case['seeds']} | {med(flat):,.0f} | {med(blocked):,.0f} | "
                     f"{', '.join(f'{r:.2f}' for r in ratios)} | **{statistics.median(ratios):.2f}** | "
                     f"{flat[0]['final_return']:.1f} / {blocked[0]['final_return']:.1f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", default="16,256", help="comma-separated seed counts (default 16,256)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--updates", type=int, default=24, help="updates per seed (default 24)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(*(int(x) for x in args.worker.split(",")))), flush=True)
        return
    import jax

    commit, device = git_commit(ROOT), device_label()
    report = {"date": datetime.date.today().isoformat(), "device": device, "jax": jax.__version__, "commit": commit,
              "command": "python benchmarks/seed_blocks.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "updates": args.updates, "rounds": args.rounds, "cases": []}
    for seeds in (int(s) for s in args.seeds.split(",")):
        case = {"seeds": seeds, "all_at_once": [], "blocks": []}
        report["cases"].append(case)
        for i in range(args.rounds):
            order = ("all_at_once", "blocks") if i % 2 == 0 else ("blocks", "all_at_once")
            for side in order:
                row = run_worker(seeds, ALL_AT_ONCE if side == "all_at_once" else 32, args.updates)
                case[side].append(row)
                print(f"{seeds:5d} seeds  {side:12s} {row['steps_per_s']:>10,.0f} steps/s", flush=True)
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / f"seed-blocks-{device}.json").write_text(json.dumps(report, indent=2) + "\n")
        (args.out / f"seed-blocks-{device}.md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
