"""``purejaxppo pbt``: the search (``--search``), the plan of a population-based training run, and the run loop over
`purejaxppo.scale.population`'s program; after each chunk lineage.json (who copied whom, the hyperparameters over
time), at the end lineage.png and the best member's schedule in summary.json."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from purejaxppo.cli.args import DEFAULT_POPULATION, DEFAULT_QUANTILE, Pbt, UsageError, check_positive, check_seed
from purejaxppo.cli.plans import RunPlan, plan_new_run, plan_resumed_run, requested_config
from purejaxppo.cli.runloop import Divergence, Program, execute, restart_note, restore_newest, summary_is_current

if TYPE_CHECKING:
    from purejaxppo.config import PPOConfig


def pbt_command(cmd: Pbt) -> int:
    """Run (or resume) population-based training in chunks of --checkpoint-every updates, each followed by the
    metrics, a checkpoint and the lineage."""
    from purejaxppo.scale import processes

    if processes.count() > 1:
        raise UsageError("pbt from the command line runs in one process for now; over several processes use the "
                         "Python API, purejaxppo.pbt, after jax.distributed.initialize() (its members are spread over "
                         "every process's devices)")
    plan = plan_pbt(cmd)
    run = plan.run
    return execute(run, lambda: PbtProgram(plan), cmd.quiet, cmd.stop_after, {
        "kind": "pbt", "population": run.num_seeds, "search": plan.space.to_json(), "ready_every": plan.ready_every,
        "quantile": plan.quantile})


def parse_search(items: Sequence[str] | None, config: PPOConfig) -> dict[str, Any]:
    """``["lr=1e-4:1e-3", "entropy_coeff=0,0.01"]`` -> `pbt`'s ``{name: (low, high) or [choices]}``; None (no
    --search): the config's learning rate / 4 to x 4. A bare --search (no items) and a name given twice are refused."""
    if items is None:
        return {"learning_rate": (config.learning_rate / 4, config.learning_rate * 4)}
    if not items:
        raise UsageError("--search needs at least one NAME=LOW:HIGH or NAME=A,B,..., e.g. learning_rate=1e-4:1e-3; "
                         "leave --search out to search learning_rate=LR/4:LR*4")
    space: dict[str, Any] = {}
    given: dict[str, str] = {}
    for item in items:
        name, sep, spec = item.partition("=")
        name = name.strip().replace("-", "_")
        if name in given:
            raise UsageError(f"--search gives {name} twice ({given[name]!r} and {item!r}); give each hyperparameter "
                             "once")
        given[name] = item
        try:
            if not sep or not name or not spec:
                raise ValueError
            if ":" in spec:
                low, high = spec.split(":")
                space[name] = (float(low), float(high))
            else:
                space[name] = [float(v) for v in spec.split(",")]
        except ValueError:
            raise UsageError(f"--search {item!r}: expected NAME=LOW:HIGH (a range) or NAME=A,B,... (choices) with "
                             "numbers, e.g. learning_rate=1e-4:1e-3 or entropy_coeff=0,0.01") from None
    return space


def default_ready_every(num_updates: int) -> int:
    """The divisor of `num_updates` nearest a tenth of it (about 10 segments)."""
    divisors = [d for d in range(1, num_updates + 1) if num_updates % d == 0]
    return min(divisors, key=lambda d: (abs(d - num_updates / 10), d))


@dataclasses.dataclass(frozen=True)
class PbtPlan:
    """A PBT run resolved from the command line (and its directory on resume): `RunPlan` (the members are its
    seeds) and the search."""

    run: RunPlan
    space: Any  # population.Space
    ready_every: int
    quantile: float

    def layout(self):
        from purejaxppo.runs.checkpoint import RunLayout

        run = self.run
        return RunLayout(run.config, run.num_seeds, run.seed, {
            "search": self.space.to_json(), "ready_every": self.ready_every, "quantile": self.quantile})


def plan_pbt(cmd: Pbt) -> PbtPlan:
    """Check every flag, then resolve a new PBT run (nothing created yet) or read a resumed one back."""
    from purejaxppo.scale.population import Space, check_pbt

    if cmd.population is not None and cmd.population < 2:
        raise UsageError(f"--population must be an integer >= 2 (PBT copies the weights of its best members into its "
                         f"worst), got {cmd.population}; purejaxppo train trains a single config")
    check_positive(cmd, "ready-every", "checkpoint-every", "stop-after")
    check_seed(cmd.seed)
    if cmd.quantile is not None and not 0 < cmd.quantile <= 0.5:
        raise UsageError(f"--quantile must be in (0, 0.5], got {cmd.quantile}")
    if cmd.resume is not None:
        return plan_resumed_pbt(cmd)
    population, quantile = cmd.population or DEFAULT_POPULATION, cmd.quantile or DEFAULT_QUANTILE
    config = requested_config(cmd)
    ready_every = cmd.ready_every or default_ready_every(config.num_updates)
    if config.num_updates % ready_every:
        raise UsageError(f"--ready-every {ready_every} must divide the run's {config.num_updates} updates "
                         f"(total_timesteps / (num_envs x num_steps)); e.g. {default_ready_every(config.num_updates)}")
    space = check_pbt(config, population, parse_search(cmd.search, config), ready_every, quantile)
    space = Space.from_json(space.to_json())  # as it will read back from run.json
    run = plan_new_run(cmd, config, population, f"{config.env_name}-pbt")
    return PbtPlan(run, space, ready_every, float(quantile))


def plan_resumed_pbt(cmd: Pbt) -> PbtPlan:
    """A PBT run read back from its directory; flags given must agree with it."""
    from purejaxppo.runs.logs import RUN_FILE, read_json
    from purejaxppo.scale.population import Space, check_space

    run_dir = Path(cmd.resume)
    info = read_json(run_dir / RUN_FILE) if (run_dir / RUN_FILE).is_file() else {}
    if info.get("kind") != "pbt":
        raise UsageError(f"--resume {run_dir}: not a PBT run directory (its {RUN_FILE} does not say kind \"pbt\"); "
                         "continue a train run with purejaxppo train --resume")
    run = plan_resumed_run(cmd)  # config, seed, directory checks; the members are the seeds
    space = Space.from_json(info["search"])
    asked = {"population": (cmd.population, run.num_seeds), "ready-every": (cmd.ready_every, info["ready_every"]),
             "quantile": (cmd.quantile, info["quantile"])}
    for flag, (value, saved) in asked.items():
        if value is not None and value != saved:
            raise UsageError(f"--resume {run_dir}: the run has --{flag} {saved}, not {value}")
    asked_space = check_space(run.config, parse_search(cmd.search, run.config)) if cmd.search is not None else None
    if asked_space is not None and Space.from_json(asked_space.to_json()) != space:
        raise UsageError(f"--resume {run_dir}: the run searches {space.as_dict()}, not {' '.join(cmd.search)}")
    return PbtPlan(run, space, int(info["ready_every"]), float(info["quantile"]))


class PbtProgram(Program):
    """The members of a population in `purejaxppo.scale.population`'s program (split over the devices)."""

    command, unit = "pbt", "member"

    def __init__(self, plan: PbtPlan):
        from purejaxppo.envs.pools import HostPool
        from purejaxppo.scale.population import default_mesh, program

        run = plan.run
        self.plan, self.members, self.run_dir = plan, run.num_seeds, run.run_dir
        self.layout = plan.layout()
        self.mesh = default_mesh(self.members)
        self.prog = program(run.config, plan.space.shape(), self.members, plan.ready_every, plan.quantile, self.mesh,
                            run.checkpoint_every)
        self.bounds = plan.space.arrays()
        self.env = self.prog.env if isinstance(self.prog.env, HostPool) else None
        self.bar_desc = f"{run.config.env_name} PBT x{self.members}"

    def start(self, ckpt, end: int, say) -> tuple[Any, int] | None:
        import jax

        from purejaxppo.runs.policy import abstract_population_of

        run = self.plan.run
        restored = restore_newest(run, ckpt, lambda: abstract_population_of(self.layout), self.layout, say)
        if restored is not None:
            state, start = jax.device_put(restored[0], self.prog.shardings), restored[1]
            if self.env is not None:  # a host pool: its environments restart (train.restart_envs)
                self.env.resume_at(start)
                state = jax.block_until_ready(self.prog.restart(state))
                say(restart_note(self.env, start))
        else:
            state, start = self.prog.init(jax.random.key(run.seed), self.bounds), 0
        if start >= end and summary_is_current(self.run_dir, start):
            print(f"{self.run_dir} is already at update {start} of {run.config.num_updates}: nothing to do", flush=True)
            return None
        return state, start

    def describe(self) -> str:
        from purejaxppo.runs.progress import device_description

        plan, config = self.plan, self.plan.run.config
        return (f"PBT on {config.env_name}, {device_description()} ({self.mesh.size} device(s)): {self.members} "
                f"members x {config.num_updates} updates x {config.batch_size} steps, a generation every "
                f"{plan.ready_every} updates, searching {plan.space.as_dict()}, checkpoint every "
                f"{plan.run.checkpoint_every} updates -> {self.run_dir}")

    def compile(self, state) -> tuple[Any, float]:
        import jax
        import numpy as np

        t0 = time.time()  # running 0 updates compiles the executable
        state, _ = jax.block_until_ready(self.prog.advance(state, self.bounds, np.int32(0)))
        return state, time.time() - t0

    def run(self, state, n: int, update: int, bar) -> tuple[Any, dict[str, Any]]:
        import numpy as np

        from purejaxppo.scale.sweeps import gather_to_host

        state, rows = self.prog.advance(state, self.bounds, np.int32(n))
        rows = {k: v[:n] for k, v in gather_to_host(rows).items()}
        rows["update"] = np.repeat(np.arange(update + 1, update + n + 1)[:, None], self.members, axis=1)
        for i in range(n):
            bar({k: v[i] for k, v in rows.items()})
        return state, rows

    def after_chunk(self, state, update: int) -> None:
        self.write_lineage(state, update)

    def write_lineage(self, state, updates_done: int) -> None:
        from purejaxppo.runs.logs import LINEAGE_FILE, write_json
        from purejaxppo.scale.population import lineage

        write_json(self.run_dir / LINEAGE_FILE, lineage_json(lineage(state_lineage(state), self.plan.space.names),
                                                             self.plan, updates_done))

    def finish(self, summary: dict[str, Any], state, diverged: Divergence | None, kept: int | None) -> None:
        from purejaxppo.runs.logs import LINEAGE_FILE

        if not (self.run_dir / LINEAGE_FILE).is_file():  # diverged in the first chunk, or killed before it was written
            self.write_lineage(state, kept or 0)  # `state` is the checkpoint's at `kept`, or the initial one
        summary["pbt"] = pbt_summary(self.run_dir, summary, self.plan)

    def divergence_advice(self, summary: dict[str, Any], kept: int | None) -> str:
        last = (f"the last finite checkpoint is {summary['checkpoint']} (update {kept})"
                if kept is not None else "no checkpoint was saved before it")
        return f"{last}. A narrower --search range usually helps"

    def report(self, summary: dict[str, Any]) -> None:
        from purejaxppo.runs.logs import LINEAGE_PLOT

        best = summary["pbt"]["best_member"]
        if best is not None:
            print(f"Best member {best}: " + ", ".join(f"{n} {_schedule_text(v)}" for n, v in
                                                      summary["pbt"]["best_schedule"].items())
                  + f". Lineage: {self.run_dir / LINEAGE_PLOT}", flush=True)


def state_lineage(state):
    """The lineage fields of a (device) `PopulationState`, fetched to the host."""
    from purejaxppo.scale.sweeps import gather_to_host

    parent, score, values = gather_to_host((state.parent, state.score, state.values))
    return state.replace(members=None, genes=(), parent=parent, score=score, values=values)


def lineage_json(lin: dict, plan: PbtPlan, updates_done: int) -> dict[str, Any]:
    """lineage.json: the search, and per generation / segment who copied whom and the values (None: not reached)."""
    import numpy as np

    from purejaxppo.runs.logs import json_scalar

    rows = lambda a: [[json_scalar(x) for x in row] for row in np.asarray(a)]  # noqa: E731
    return {"updates_done": updates_done, "ready_every": plan.ready_every, "quantile": plan.quantile,
            "population": plan.run.num_seeds, "search": plan.space.to_json(),
            "parent": np.asarray(lin["parent"]).tolist(), "score": rows(lin["score"]),
            "hyperparameters": {n: rows(v) for n, v in lin["hyperparameters"].items()}}


def pbt_summary(run_dir: Path, summary: dict[str, Any], plan: PbtPlan) -> dict[str, Any]:
    """The best member (by the final return of summary.json), its hyperparameter schedule; and lineage.png drawn."""
    import numpy as np

    from purejaxppo.runs.logs import LINEAGE_FILE, LINEAGE_PLOT, read_json
    from purejaxppo.runs.plotting import draw_lineage, save_png

    lin = read_json(run_dir / LINEAGE_FILE)
    finals = np.asarray([np.nan if v is None else v for v in summary["final_episode_return"]["per_seed"]], float)
    best = int(np.nanargmax(finals)) if np.isfinite(finals).any() else None
    values = {n: np.asarray([[np.nan if x is None else x for x in row] for row in v], float)
              for n, v in lin["hyperparameters"].items()}
    save_png(draw_lineage({"parent": lin["parent"], "hyperparameters": values}, finals, plan.ready_every,
                          f"{plan.run.config.env_name}: PBT, {plan.run.num_seeds} members"), run_dir / LINEAGE_PLOT)
    schedule = {} if best is None else {n: [None if not np.isfinite(x) else float(x) for x in v[:, best]]
                                        for n, v in values.items()}
    copies = int((np.asarray(lin["parent"], int) >= 0).sum())
    return {"best_member": best, "best_schedule": schedule, "copies": copies, "lineage": LINEAGE_FILE,
            "lineage_plot": LINEAGE_PLOT}


def _schedule_text(values: list) -> str:
    shown = [v for v in values if v is not None]
    if not shown:
        return "n/a"
    return f"{shown[0]:.3g}" + ("" if all(v == shown[0] for v in shown) else f" -> {shown[-1]:.3g} (per segment: "
                                + " ".join(f"{v:.3g}" for v in shown) + ")")

