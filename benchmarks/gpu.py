"""One call on a lent GPU: purejaxppo beside PureJaxRL, then the scaling figure, inside one time budget.

    bash benchmarks/gpu_run.sh        # on the device machine; its header says what to prepare here first
    python benchmarks/gpu.py --purejaxrl-dir .gpu/purejaxrl --out OUT [--budget-s 520]
    python benchmarks/gpu.py --purejaxrl-dir ../shared/peers/purejaxrl --out /tmp/gpu-dry --dry-run   # CPU, tiny

The steps, in order of value; each starts only if its estimated time still fits in --budget-s:

1. benchmarks/peers.py, one run per case, each into a temporary folder: CartPole-v1 at 1 seed (2e5 steps per seed:
   one seed is launch-bound, ~90k steps/s), 64 seeds (2e5) and 2048 seeds (5e4), then Breakout-MinAtar at 256 seeds
   (2.5e5 instead of 1e7, which is ~2 min per side per pair): a few seconds of training per side, as a pair's two
   process starts cost more than that. 3 alternating pairs per case, or 2 when 3 would leave too little time for the
   later cases (at 2) and the whole scaling figure. A case's later pairs load both programs from JAX's persistent
   compilation cache (a folder of this run), so only its first pair pays XLA's compile; its compile seconds are the
   first pair's. Each case joins OUT/peers-<device>.json and .md (peers.markdown) as soon as it ends.
2. benchmarks/scaling.py --devices none: CartPole `sweep` throughput and peak memory at 1, 64, 2048, 8192 and 32768
   seeds (1e4 steps per seed, one timed call after the compiling one); when time is short the middle counts go first
   (1 seed and the most stay). OUT/scaling-<device>.json and .png.
3. benchmarks/scaling.py --max-seeds: the most seeds one GPU holds, added to that report, if 2 minutes remain.

The estimates start from an H100's figures (docs/scaling.md) and are rescaled by what the finished cases really took.
A step still running at --budget-s + 40 s is stopped (scaling.py keeps what it measured), so with the default budget
the command ends inside the device's 600 s. The merged JSON's "run" records every command line, the budgets, each
step's estimate, wall time and status, what was skipped and why, and the versions the workers imported. The parent
process never imports JAX (on a GPU it would hold memory the workers need).

--dry-run: the plan's code paths on the CPU (JAX_PLATFORMS=cpu, XLA's cheapest optimisation) with tiny budgets:
CartPole at 1 seed (make_train) and Breakout-MinAtar at 2 (sweep, as CartPole's 64 and 2048 seeds run), 1 pair, 2
updates per seed, scaling at seeds 1 and 2, no --max-seeds (accelerators only). About a minute on 2 cores, nearly all
of it process starts and compiles.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
import peers  # noqa: E402  (benchmarks/peers.py: imports no JAX at module level)
from repo_paths import repo_relative  # noqa: E402

PEER_SLOWDOWN = 1.5  # the peer's training is assumed this much slower than ours when estimating (a margin, no claim)
COMPILE_NOTE = ("the first pair's: each case's later pairs load both programs from JAX's persistent compilation cache "
                "(a folder of this run, empty at its start), which leaves the training they time unchanged")
GRACE_S = 40.0  # a step still running this long after --budget-s is stopped
CALIBRATION_RANGE = (0.5, 3.0)  # how far the measured / estimated ratio may rescale the later estimates


# ------------------------------------------------------------------------------------------------------- the plan
@dataclass(frozen=True)
class Case:
    """One side-by-side case of benchmarks/peers.py and what it is expected to cost (the estimate only sizes the
    plan: how many pairs, what still fits)."""

    env: str
    seeds: int
    total_timesteps: int  # per seed
    steps_per_s: float  # purejaxppo's env steps/s at this size, expected
    start_s: float  # a worker process's start: imports, the backend, tracing (and loading a cached program)
    compile_s: float  # XLA's compile of one side's program, paid in the first pair only (the cache serves the rest)

    @property
    def name(self) -> str:
        return f"{self.env} x{self.seeds}"

    def pair_s(self, first: bool) -> float:
        """Both sides once: purejaxppo's `sweep` (several seeds) trains twice, its compiling call and its timed one."""
        run_s = self.seeds * self.total_timesteps / self.steps_per_s
        ours_s = run_s * (2 if self.seeds > 1 else 1)
        return 2 * self.start_s + (2 * self.compile_s if first else 0.0) + ours_s + PEER_SLOWDOWN * run_s

    def estimate_s(self, pairs: int) -> float:
        """`pairs` pairs, then the environment-only process."""
        return self.pair_s(True) + (pairs - 1) * self.pair_s(False) + self.start_s + self.compile_s / 4


@dataclass(frozen=True)
class Scaling:
    """benchmarks/scaling.py's seeds sweep (and, on an accelerator, its --max-seeds search)."""

    seeds: tuple[int, ...]  # by priority: the first ones are kept when time is short
    total_timesteps: int
    repeats: int
    steps_per_s: dict = field(hash=False)  # seeds -> purejaxppo's env steps/s, expected
    overhead_s: float  # a worker's start and compile
    max_seeds: dict | None = field(default=None, hash=False)  # scaling.py's --max-seeds-* options; None: skipped
    max_seeds_min_s: float = 0.0  # the least time worth starting the search with

    def point_s(self, seeds: int) -> float:
        """One fresh process: start, the compiling call, then `repeats` timed calls."""
        return self.overhead_s + (1 + self.repeats) * seeds * self.total_timesteps / self.steps_per_s[seeds]

    def reserve_s(self) -> float:
        """The smallest figure worth drawing: the first two seed counts by priority."""
        return sum(self.point_s(s) for s in self.seeds[:2])

    def total_s(self) -> float:
        return sum(self.point_s(s) for s in self.seeds)


@dataclass(frozen=True)
class Plan:
    cases: tuple[Case, ...]
    pairs: tuple[int, ...]  # preferred first; the last is the fewest a case runs with
    scaling: Scaling


# An H100's figures (docs/scaling.md: ~13 s to compile, 90k steps/s at 1 seed, 5.1M at 64, 38M at 2048). Budgets are
# cut to a few seconds of training per side: each pair costs two process starts, more than its training.
GPU_PLAN = Plan(
    cases=(
        Case("CartPole-v1", 1, 200_000, 9e4, start_s=8.0, compile_s=12.0),
        Case("CartPole-v1", 64, 200_000, 5e6, start_s=8.0, compile_s=12.0),
        Case("CartPole-v1", 2048, 50_000, 3.5e7, start_s=8.0, compile_s=12.0),
        Case("Breakout-MinAtar", 256, 250_000, 2e7, start_s=8.0, compile_s=14.0),
    ),
    pairs=(3, 2),
    scaling=Scaling(
        seeds=(1, 32768, 2048, 8192, 64), total_timesteps=10_240, repeats=1,
        steps_per_s={1: 9e4, 64: 5e6, 2048: 3.5e7, 8192: 4e7, 32768: 4e7}, overhead_s=21.0,
        max_seeds={"start": 65536, "growth": 1.5, "tolerance": 0.1, "timesteps": 1024}, max_seeds_min_s=120.0,
    ),
)
DRY_PLAN = Plan(  # the same steps on a CPU: 2 updates per seed, so a case costs its processes' start and compile;
    # one case per code path (1 seed: make_train; several: sweep; MinAtar), CartPole's 64/2048 take the sweep path too
    cases=(
        Case("CartPole-v1", 1, 1024, 2e4, start_s=4.0, compile_s=4.0),
        Case("Breakout-MinAtar", 2, 16_384, 4e4, start_s=4.0, compile_s=5.0),
    ),
    pairs=(1,),
    scaling=Scaling(seeds=(1, 2), total_timesteps=1024, repeats=1, steps_per_s={1: 2e4, 2: 4e4}, overhead_s=9.0),
)


# --------------------------------------------------------------------------------------------- commands and paths
def display(arg: str, tmp: Path) -> str:
    """`arg` as the results record it: the interpreter as "python", paths relative to the repository (or to TMP,
    the run's temporary folder), never absolute."""
    if arg == sys.executable:
        return "python"
    if not os.path.isabs(arg):
        return arg
    path = Path(arg).resolve()
    if path.is_relative_to(tmp.resolve()):
        return (Path("TMP") / path.relative_to(tmp.resolve())).as_posix()
    return repo_relative(path)


def command_line(argv: list[str], tmp: Path) -> str:
    return shlex.join(display(a, tmp) for a in argv)


def peers_argv(case: Case, pairs: int, purejaxrl_dir: Path, out: Path) -> list[str]:
    return [sys.executable, str(HERE / "peers.py"), "--purejaxrl-dir", str(purejaxrl_dir), "--env", case.env,
            "--seeds", str(case.seeds), "--pairs", str(pairs), "--total-timesteps", str(case.total_timesteps),
            "--out", str(out)]


def scaling_argv(scaling: Scaling, seeds: list[int], out: Path) -> list[str]:
    return [sys.executable, str(HERE / "scaling.py"), "--seeds", ",".join(map(str, seeds)), "--devices", "none",
            "--total-timesteps", str(scaling.total_timesteps), "--repeats", str(scaling.repeats), "--out", str(out)]


def max_seeds_argv(options: dict, out: Path) -> list[str]:
    return [sys.executable, str(HERE / "scaling.py"), "--seeds", "none", "--devices", "none", "--max-seeds",
            "--max-seeds-start", str(options["start"]), "--max-seeds-growth", str(options["growth"]),
            "--max-seeds-tolerance", str(options["tolerance"]), "--max-seeds-timesteps", str(options["timesteps"]),
            "--out", str(out)]


def peer_commit(path: Path) -> str:
    """PureJaxRL's commit: git's where `path` is a checkout of its own; else (a copied snapshot, such as .gpu/purejaxrl
    inside this repository, where git would name purejaxppo's commit) the commit the snapshot was taken at."""
    top = subprocess.run(["git", "-C", str(path), "rev-parse", "--show-toplevel"], capture_output=True, text=True,
                         check=False).stdout.strip()
    if top and Path(top).resolve() == Path(path).resolve():
        return peers.git_commit(path)
    return f"{peers.PUREJAXRL_COMMIT} (a snapshot without its git history)"


# -------------------------------------------------------------------------------------------------- the machine
PREFLIGHT = """
import json, sys
from importlib.metadata import version
sys.path.insert(0, {benchmarks!r})
import jax, gymnax, distrax, flax, optax, purejaxppo, peers
d = jax.devices()[0]
print(json.dumps({{"device": peers.device_label(), "platform": d.platform, "device_kind": d.device_kind,
                  **{{name: version(name) for name in ("jax", "jaxlib", "gymnax", "distrax", "tfp-nightly", "flax",
                                                      "optax", "chex", "numpy")}},
                  "purejaxppo": purejaxppo.__version__}}))
"""


def preflight(env: dict) -> dict:
    """Import everything the workers need in a fresh process (a missing wheel fails here, in seconds, not inside a
    case) and return the device and versions it sees."""
    proc = subprocess.run([sys.executable, "-c", PREFLIGHT.format(benchmarks=str(HERE))], capture_output=True,
                          text=True, env=env, timeout=300, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"preflight failed: the workers could not import their packages\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_until(argv: list[str], env: dict, deadline: float) -> str:
    """Run `argv` (its output goes to ours) until it ends or `deadline` (time.monotonic()); then stop its process
    group. Returns "ok", "failed (rc N)" or "stopped at the deadline"."""
    proc = subprocess.Popen(argv, env=env, cwd=ROOT, start_new_session=True)
    try:
        rc = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        return "ok" if rc == 0 else f"failed (rc {rc})"
    except subprocess.TimeoutExpired:
        for sig, wait_s in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
            os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout=wait_s)
                break
            except subprocess.TimeoutExpired:
                continue
        return "stopped at the deadline"


# ------------------------------------------------------------------------------------------------------ the run
class Run:
    """The budget, the merged peers report and the record of every step."""

    def __init__(self, args, plan: Plan, machine: dict, env: dict, tmp: Path, argv: list[str], start: float):
        self.args, self.plan, self.machine, self.env, self.tmp = args, plan, machine, env, tmp
        self.start = start  # time.monotonic() when the command started: the preflight counts too
        self.estimated_s = self.measured_s = 0.0  # over the finished peer cases: calibrates the later estimates
        self.record = {
            "command": command_line([sys.executable, str(HERE / "gpu.py"), *argv], tmp),
            "dry_run": args.dry_run, "budget_s": args.budget_s, "stop_after_s": args.budget_s + GRACE_S,
            "machine": machine, "steps": [], "skipped": [],
        }
        self.report = {  # the header until the first case: then peers.py's own header, as its markdown expects
            "date": datetime.date.today().isoformat(), "device": machine["device"], "jax": machine["jax"],
            "load_average_at_start": os.getloadavg(), "purejaxppo_commit": peers.git_commit(ROOT), "pairs": None,
            "peer": {"name": "PureJaxRL", "dir": repo_relative(args.purejaxrl_dir),
                     "commit": peer_commit(args.purejaxrl_dir)},
            "config": {}, "cases": [], "run": self.record,
        }

    # time
    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def remaining(self) -> float:
        return self.args.budget_s - self.elapsed()

    def scale(self) -> float:
        if not self.estimated_s:
            return 1.0
        lo, hi = CALIBRATION_RANGE
        return min(hi, max(lo, self.measured_s / self.estimated_s))

    def fits(self, estimate_s: float) -> bool:
        return self.scale() * estimate_s <= self.remaining()

    # steps
    def step(self, name: str, argv: list[str], estimate_s: float, env: dict | None = None) -> dict:
        """Run one step under the hard deadline and record it (the record is saved before and after)."""
        row = {"step": name, "command": command_line(argv, self.tmp), "estimate_s": round(self.scale() * estimate_s, 1),
               "started_at_s": round(self.elapsed(), 1), "status": "running"}
        self.record["steps"].append(row)
        self.save()
        print(f"\n=== {name}: estimated {row['estimate_s']:.0f} s, {self.remaining():.0f} s of the budget left\n"
              f"    {row['command']}", flush=True)
        t0 = time.monotonic()
        row["status"] = run_until(argv, env or self.env, self.start + self.args.budget_s + GRACE_S)
        row["wall_s"] = round(time.monotonic() - t0, 1)
        print(f"=== {name}: {row['status']} after {row['wall_s']:.0f} s", flush=True)
        return row

    def skip(self, name: str, why: str) -> None:
        self.record["skipped"].append({"step": name, "why": why})
        print(f"\n=== skipped {name}: {why}", flush=True)
        self.save()

    def choose_pairs(self, index: int) -> int | None:
        """The most pairs case `index` can have while the later cases (at the fewest pairs) and the whole scaling
        figure still fit; the fewest if only this case fits; None if not even that."""
        case, later, fewest = self.plan.cases[index], self.plan.cases[index + 1:], self.plan.pairs[-1]
        reserve = sum(c.estimate_s(fewest) for c in later) + self.plan.scaling.total_s()
        for pairs in self.plan.pairs:
            if self.fits(case.estimate_s(pairs) + reserve):
                return pairs
        return fewest if self.fits(case.estimate_s(fewest)) else None

    def peer_case(self, index: int) -> None:
        case = self.plan.cases[index]
        pairs = self.choose_pairs(index)
        if pairs is None:
            return self.skip(case.name, f"~{self.scale() * case.estimate_s(self.plan.pairs[-1]):.0f} s needed, "
                                        f"{self.remaining():.0f} s left")
        out = self.tmp / f"{case.env}-{case.seeds}"
        env = dict(self.env, JAX_COMPILATION_CACHE_DIR=str(self.tmp / "jax-cache"))  # pairs after the first load it
        row = self.step(case.name, peers_argv(case, pairs, self.args.purejaxrl_dir, out), case.estimate_s(pairs), env)
        reports = sorted(out.glob("peers-*.json"))
        if row["status"] == "ok" and reports:
            self.estimated_s += case.estimate_s(pairs)
            self.measured_s += row["wall_s"]
            self.add_case(json.loads(reports[0].read_text()), case, row)
        self.save()

    def add_case(self, measured: dict, case: Case, row: dict) -> None:
        """Merge the one case of a peers.py report: its header replaces ours (but for what differs by case: the
        pairs, the config, kept per case) and the case gains its budget and command line."""
        sub = measured["cases"][0]
        first = sub["pairs"][0]  # the only pair that compiled: the later ones loaded the program from the cache
        for side in ("purejaxppo", "peer"):
            sub["summary"][side]["compile_s"] = first[side]["compile_s"]
        sub["summary"]["compile_s_from"] = COMPILE_NOTE
        sub.update(total_timesteps=case.total_timesteps, config=measured.get("config"),
                   steps_per_seed=peers.steps_per_seed(peers.peer_config(case.env, case.total_timesteps)),
                   command=row["command"], wall_s=row["wall_s"])
        self.report.update({k: v for k, v in measured.items()
                            if k not in ("cases", "pairs", "config", "load_average_at_start")})
        self.report["peer"]["commit"] = peer_commit(self.args.purejaxrl_dir)
        self.report["cases"].append(sub)
        self.report["config"] = {c["env"]: {k: v for k, v in c["config"].items() if k != "TOTAL_TIMESTEPS"}
                                 for c in self.report["cases"] if c["config"]}  # each case has its own budget
        counts = sorted({len(c["pairs"]) for c in self.report["cases"]})
        self.report["pairs"] = counts[0] if len(counts) == 1 else " or ".join(map(str, counts)) + " (see each case)"

    def scaling(self) -> None:
        scaling, chosen, need = self.plan.scaling, [], 0.0
        for seeds in scaling.seeds:  # by priority: keep what fits
            if self.fits(need + scaling.point_s(seeds)):
                chosen.append(seeds)
                need += scaling.point_s(seeds)
        dropped = [s for s in scaling.seeds if s not in chosen]
        if not chosen:
            return self.skip("scaling", f"~{self.scale() * scaling.reserve_s():.0f} s needed for seeds "
                                        f"{list(scaling.seeds[:2])}, {self.remaining():.0f} s left")
        if dropped:
            self.skip(f"scaling at seeds {dropped}", "not enough time left")
        self.step("scaling", scaling_argv(scaling, sorted(chosen), self.args.out), need)

    def max_seeds(self) -> None:
        options = self.plan.scaling.max_seeds
        if options is None:
            return self.skip("max-seeds", "needs an accelerator (on the CPU the seeds share the host's RAM)")
        if not list(self.args.out.glob("scaling-*.json")):
            return self.skip("max-seeds", "adds to the scaling report, which was not written")
        if not self.fits(self.plan.scaling.max_seeds_min_s):
            return self.skip("max-seeds", f"{self.remaining():.0f} s left, fewer than the "
                                          f"{self.plan.scaling.max_seeds_min_s:.0f} s a search needs")
        self.step("max-seeds", max_seeds_argv(options, self.args.out), self.remaining())

    # results
    def save(self) -> None:
        """Write OUT/peers-<device>.json and .md as they stand (after every step: a run cut short keeps them)."""
        self.record["wall_s"] = round(self.elapsed(), 1)
        stem = self.args.out / f"peers-{self.report['device']}"
        stem.with_suffix(".json").write_text(json.dumps(self.report, indent=2) + "\n")
        stem.with_suffix(".md").write_text(markdown(self.report))


def markdown(report: dict) -> str:
    """peers.markdown, its sweep label made right for an accelerator, then how this run was made."""
    text = peers.markdown(report) if report["cases"] else f"# purejaxppo vs PureJaxRL ({report['device']})\n\nNo " \
                                                           "case finished.\n"
    if not report["device"].startswith("cpu"):
        text = text.replace(" CPU devices |", " GPU device(s) |")  # peers.markdown names every sweep's devices CPU
    run = report["run"]
    lines = ["", "## How this run was made", "",
             f"`{run['command']}`{' (dry run: tiny budgets on the CPU)' if run['dry_run'] else ''}: budget "
             f"{run['budget_s']:.0f} s (a step still running at {run['stop_after_s']:.0f} s is stopped), "
             f"{run['wall_s']:.0f} s in all. Compile seconds are {COMPILE_NOTE}.", "",
             "| step | steps per seed | estimate s | wall s | status | command |", "|---|---|---|---|---|---|"]
    per_seed = {f"{c['env']} x{c['seeds']}": f"{c['steps_per_seed']:,}" for c in report["cases"]}
    for row in run["steps"]:
        lines.append(f"| {row['step']} | {per_seed.get(row['step'], '')} | {row['estimate_s']:.0f} "
                     f"| {row.get('wall_s', '')} | {row['status']} | `{row['command']}` |")
    lines += ["", *(f"- skipped {s['step']}: {s['why']}" for s in run["skipped"])]
    return text + "\n".join(lines).rstrip() + "\n"


# ------------------------------------------------------------------------------------------------------- driver
DRY_RUN_ENV = {  # the CPU alone; XLA's cheapest optimisation halves the compile time, which a dry run is made of
    "JAX_PLATFORMS": "cpu",
    "XLA_FLAGS": "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true",
}


def worker_overrides(dry_run: bool) -> dict:
    """What every process started gets on top of our environment: unbuffered output, and on a dry run the CPU."""
    overrides = {"PYTHONUNBUFFERED": "1"}
    if dry_run:
        overrides.update(DRY_RUN_ENV, XLA_FLAGS=f"{os.environ.get('XLA_FLAGS', '')} {DRY_RUN_ENV['XLA_FLAGS']}".strip())
    return overrides


def parse(argv: list[str] | None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--purejaxrl-dir", type=Path, required=True,
                    help=f"a PureJaxRL checkout (commit {peers.PUREJAXRL_COMMIT}); on the device .gpu/purejaxrl")
    ap.add_argument("--out", type=Path, default=peers.RESULTS, help="results folder (default benchmarks/results)")
    ap.add_argument("--budget-s", type=float, default=520.0,
                    help=f"no step starts unless its estimate fits in this many seconds; a step still running "
                         f"{GRACE_S:.0f} s later is stopped (default 520)")
    ap.add_argument("--dry-run", action="store_true", help="the plan's code paths on the CPU, tiny budgets (~1 min)")
    args = ap.parse_args(argv)
    if not (args.purejaxrl_dir / "purejaxrl" / "ppo.py").is_file():
        ap.error(f"{args.purejaxrl_dir} holds no purejaxrl/ppo.py: not a PureJaxRL checkout")
    return args


def main(argv: list[str] | None = None) -> dict:
    start = time.monotonic()
    argv = sys.argv[1:] if argv is None else argv
    args = parse(argv)
    args.purejaxrl_dir, args.out = args.purejaxrl_dir.resolve(), args.out.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    overrides = worker_overrides(args.dry_run)
    env = dict(os.environ, **overrides)
    machine = preflight(env)
    print(f"machine: {machine}", flush=True)
    if machine["platform"] == "cpu" and not args.dry_run:
        raise SystemExit("no accelerator here: this plan is sized for a GPU (use --dry-run to try it on the CPU)")
    plan = DRY_PLAN if args.dry_run else GPU_PLAN
    with tempfile.TemporaryDirectory(prefix="purejaxppo-gpu-") as tmp:
        run = Run(args, plan, machine, env, Path(tmp), argv, start)
        run.record["environment"] = overrides
        for index in range(len(plan.cases)):
            run.peer_case(index)
        run.scaling()
        run.max_seeds()
        run.save()
    print(f"\nwrote {args.out / ('peers-' + machine['device'])}.json and .md ({run.elapsed():.0f} s); skipped: "
          f"{[s['step'] for s in run.record['skipped']] or 'nothing'}", flush=True)
    return run.report


if __name__ == "__main__":
    main()
