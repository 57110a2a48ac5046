"""One process against two: `purejaxppo train --num-seeds S` alone, and as two processes on this machine
(--coordinator-address 127.0.0.1:PORT --num-processes 2 --process-id 0/1, one CPU device each), alternating.

    python benchmarks/two_processes.py                    # CartPole-v1, 8 seeds, 200,000 steps each, 3 rounds

The figure is the training rate the run reports in its summary.json (env steps per second over all seeds, compiling
excluded), the median over rounds. Writes benchmarks/results/two-processes-<device>.json and .md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train(processes: int, seeds: int, steps: int) -> dict:
    """One run of `processes` processes; its summary.json."""
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        base = [sys.executable, "-m", "purejaxppo", "train", "--env", "CartPole-v1", "--num-seeds", str(seeds),
                "--total-timesteps", str(steps), "--logdir", str(run), "--quiet"]
        env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_NUM_CPU_DEVICES")}
        env.update(JAX_PLATFORMS="cpu", PUREJAXPPO_CACHE_DIR="off")
        port = free_port()
        extra = [[] for _ in range(processes)] if processes == 1 else [
            ["--coordinator-address", f"127.0.0.1:{port}", "--num-processes", str(processes), "--process-id", str(i)]
            for i in range(processes)]
        procs = [subprocess.Popen(base + e, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for e in extra]
        for p in procs:
            _, err = p.communicate(timeout=1800)
            if p.returncode != 0:
                raise SystemExit(f"train failed ({p.returncode}):\n{err[-2000:]}")
        return json.loads((run / "summary.json").read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--steps", type=int, default=200_000, help="env steps per seed")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    rows = {1: [], 2: []}
    for i in range(args.rounds):
        for n in ((1, 2) if i % 2 == 0 else (2, 1)):
            summary = train(n, args.seeds, args.steps)
            rows[n].append({"steps_per_s": summary["steps_per_second"], "compile_s": summary["compile_seconds"],
                            "final_return": summary["final_episode_return"]["mean"]})
            print(f"round {i + 1}: {n} process(es) {summary['steps_per_second']:>10,.0f} steps/s", flush=True)
    med = {n: statistics.median(r["steps_per_s"] for r in rs) for n, rs in rows.items()}
    ratios = [b["steps_per_s"] / a["steps_per_s"] for a, b in zip(rows[1], rows[2])]
    device = f"cpu-{os.cpu_count()}core"
    report = {"date": datetime.date.today().isoformat(), "device": device, "seeds": args.seeds,
              "steps_per_seed": args.steps, "rounds": rows, "median_steps_per_s": med,
              "ratio_per_round": ratios, "median_ratio": statistics.median(ratios),
              "command": "python benchmarks/two_processes.py " + " ".join(sys.argv[1:])}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"two-processes-{device}.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS / f"two-processes-{device}.md").write_text(
        f"# One process against two ({device}, {report['date']})\n\n`{report['command']}`: CartPole-v1, "
        f"{args.seeds} seeds x {args.steps:,} steps, the training rate from summary.json, {args.rounds} alternating "
        "rounds.\n\n| processes | steps/s (median) | ratio per round | median ratio |\n|---|---|---|---|\n"
        f"| 1 (one CPU device) | {med[1]:,.0f} | | |\n"
        f"| 2 (one CPU device each) | {med[2]:,.0f} | {', '.join(f'{r:.2f}' for r in ratios)} | "
        f"**{report['median_ratio']:.2f}** |\n")
    print(f"median: 1 process {med[1]:,.0f}, 2 processes {med[2]:,.0f} steps/s (x{report['median_ratio']:.2f})")


if __name__ == "__main__":
    main()
