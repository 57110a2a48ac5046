"""The command line's arguments: the command dataclasses (tyro builds the parser and ``--help`` from them), every
`PPOConfig` field as a flag (read from config.py's source by `purejaxppo.configfields`, so nothing here imports jax),
`parse` and its one-line errors (`UsageError`), and the checks of single flag values shared by the commands."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import re
import sys
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import tyro

from purejaxppo.configfields import FIELDS, FieldSpec

EXIT_USAGE = 2
EXIT_DIVERGED = 3
EXIT_INTERRUPTED = 130
SEED_RANGE = (0, 2**32 - 1)  # jax.random.key takes a 32-bit seed without x64
DEFAULT_ENV = "CartPole-v1"
DEFAULT_CHECKPOINTS_PER_RUN = 10
DEFAULT_POPULATION, DEFAULT_QUANTILE = 8, 0.25  # purejaxppo pbt
DESCRIPTION = ("PPO in pure JAX: train on gymnax environments (one jitted program per run, many seeds at once), "
               "hyperparameter sweeps and population-based training, "
               "evaluate checkpoints, export policies (ONNX, StableHLO), plot learning curves, compare runs. "
               "`purejaxppo COMMAND --help` for each command; `purejaxppo --version` prints the version.")

# ------------------------------------------------------------------------------------------- PPOConfig as flags
# Built from `configfields` (PPOConfig's fields read from config.py's source), so that --help and a bad flag never
# import jax: `purejaxppo.config` and everything that needs jax are imported inside the command functions.
_TYPES = {"str": str, "int": int, "float": float, "bool": bool}
_HELP = {  # shorter than PPOConfig's docstring, in the command line's terms (the rest: its first sentence)
    "env_kwargs": "keyword arguments for the environment's constructor, as a JSON object.",
    "total_timesteps": "the budget in environment steps per seed, rounded down to a multiple of N*T "
                       "(--print-config shows the steps trained).",
    "clip_value_loss": "clip the value update to +-clip_param around the rollout's value.",
    "policy_objective": "clipped surrogate (ppo) or Simple Policy Optimization's penalty (spo).",
    "network": "the torso: mlp, cnn (image observations such as MinAtar's) or gru (recurrent).",
    "hidden_sizes": "widths of the MLP's layers (and of the CNN's and the GRU's dense layer).",
    "activation": "the torso's activation function.",
    "normalize_observations": "standardise observations with running statistics.",
    "normalize_rewards": "scale rewards by the running std of the discounted return.",
    "eval_every": "greedy evaluation every this many updates during training (0: off).",
}
OVERRIDE_FIELDS = tuple(f for f in FIELDS if f.name != "env_name")  # the environment is --env (alias --env-name)
CONFIG_PREFIX = "--config."  # the dotted spelling, accepted but not listed in --help


def _flag_help(field: FieldSpec) -> str:
    """The field's help: its docstring entry's first sentence, without reST markup."""
    text = _HELP.get(field.name) or field.doc
    sentence = re.split(r"(?<=[.)])\s+(?=[A-Z`])", text, maxsplit=1)[0]
    return sentence.replace("``", "").replace("`", "")


def _override_type(field: FieldSpec) -> tuple[Any, str | None]:
    """The CLI type of a PPOConfig field and its metavar."""
    if field.choices:
        return Literal[field.choices], None  # type: ignore[valid-type]
    if field.name == "env_kwargs":
        return str, "JSON"
    if field.name == "total_timesteps":
        return float, "INT"  # accepts 1e6; PPOConfig turns integral floats into ints and rejects the rest
    if field.annotation == "tuple[int, ...]":
        return tuple[int, ...], "INT [INT ...]"
    if field.annotation not in _TYPES:
        raise TypeError(f"PPOConfig.{field.name}: no command-line type for {field.annotation!r}")
    return _TYPES[field.annotation], None


def _shown_default(field: FieldSpec) -> str:
    default = field.default
    if field.name == "env_kwargs":
        return json.dumps(dict(default))
    return " ".join(map(str, default)) if isinstance(default, tuple) else str(default)


def _make_overrides_class() -> type:
    """A frozen dataclass with one optional field per `PPOConfig` field (None: not given on the command line)."""
    fields = []
    for field in OVERRIDE_FIELDS:
        cli_type, metavar = _override_type(field)
        arg = tyro.conf.arg(
            name=field.name.replace("_", "-"),
            prefix_name=False,
            metavar=metavar,
            help=_flag_help(field),
            help_behavior_hint=f"(default: --env's, else {_shown_default(field)})",
        )
        fields.append((field.name, Annotated[cli_type | None, arg], dataclasses.field(default=None)))
    cls = dataclasses.make_dataclass("ConfigOverrides", fields, frozen=True)
    cls.__doc__ = "PPOConfig fields."
    return cls


ConfigOverrides = _make_overrides_class()
CONFIG_GROUP_HELP = (
    "PPOConfig fields (each also as --config.<field>). A flag left out keeps the value in --env's shipped config "
    "(or in --config-file), else the PPOConfig default shown; --print-config shows the values a run would use.")


def override_values(overrides: Any) -> dict[str, Any]:
    """The fields given on the command line, converted for `PPOConfig.replace` (env_kwargs parsed from JSON)."""
    values = {k: v for k, v in dataclasses.asdict(overrides).items() if v is not None}
    if "env_kwargs" in values:
        try:
            values["env_kwargs"] = json.loads(values["env_kwargs"])
        except json.JSONDecodeError as e:
            raise ValueError(f"--env-kwargs must be a JSON object such as '{{\"size\": 8}}': {e}") from None
    return values


ENV_NAME_FLAGS = ("--env-name", "--env_name")  # PPOConfig.env_name's own flags: accepted as --env, not listed


def flat_spelling(argv: Sequence[str]) -> list[str]:
    """`argv` with the dotted spelling of PPOConfig flags made flat (``--config.learning_rate`` -> ``--learning_rate``,
    ``--config.no-anneal-lr`` -> ``--no-anneal-lr``) and ``--env-name``/``--config.env-name`` made ``--env``."""
    out = []
    for arg in argv:
        if arg.startswith(CONFIG_PREFIX):
            arg = "--" + arg[len(CONFIG_PREFIX):]
        flag, eq, value = arg.partition("=")
        out.append("--env" + eq + value if flag in ENV_NAME_FLAGS else arg)
    return out


# ------------------------------------------------------------------------------------------------------ commands
# an off-by-default switch: --quiet only (no --no-quiet, no "(default: False)")
Flag = Annotated[bool, tyro.conf.FlagCreatePairsOff, tyro.conf.arg(help_behavior_hint="")]


def _optional(kind: Any, default: str = "") -> Any:
    """An optional flag (None: not given, the default applies), with `default` shown for it in --help."""
    return Annotated[kind | None, tyro.conf.arg(help_behavior_hint=default)]


# flags of both train and pbt
Env = _optional(str, f"(default: {DEFAULT_ENV})")
OptionalPath = _optional(Path)  # config file, --resume
Seed = _optional(int, "(default: 0)")
CheckpointEvery = _optional(int, f"(default: about {DEFAULT_CHECKPOINTS_PER_RUN} per run)")
StopAfter = _optional(int, "(default: the whole budget)")
Overrides = Annotated[ConfigOverrides, tyro.conf.arg(help=CONFIG_GROUP_HELP)]


def _host_flag(kind: type, doc: str, metavar: str | None = None) -> Any:
    """A flag of the several-hosts group: spelled without the group's prefix (``--process-id``)."""
    return Annotated[kind | None, tyro.conf.arg(prefix_name=False, help=doc, metavar=metavar, help_behavior_hint="")]


@dataclasses.dataclass(frozen=True)
class Hosts:
    """Several processes (hosts) as one run, through jax.distributed: seeds (or cells) spread over all of them, only
    process 0 writes. Start the same command in every process."""

    coordinator_address: _host_flag(str, "process 0's address, the same in every process.", "HOST:PORT") = None
    num_processes: _host_flag(int, "how many processes take part.") = None
    process_id: _host_flag(int, "this one, 0 .. N-1 (0 writes the run).", "I") = None
    distributed: Annotated[bool, tyro.conf.arg(prefix_name=False, help_behavior_hint="", help=(
        "find all three from SLURM, Open MPI or a TPU."))] = False
    heartbeat_timeout: Annotated[int, tyro.conf.arg(prefix_name=False, help_behavior_hint="(default: 60)", help=(
        "seconds of silence that stop the others."))] = 60


HostsGroup = Annotated[Hosts, tyro.conf.arg(help="")]  # "hosts options": see docs/scaling.md


@dataclasses.dataclass(frozen=True)
class Train:
    """Train PPO on one environment for one or more seeds (vmapped in one compiled program).

    Writes <logdir>/config.json, run.json, metrics.jsonl (one line per update and seed), checkpoints/ and
    summary.json; shows a progress bar when stderr is a terminal."""

    env: Env = None
    """A gymnax environment id (its shipped config, else PPOConfig defaults), or a .toml/.json config file. Also
    spelled --env-name."""
    config_file: OptionalPath = None
    """A .toml/.json file of PPOConfig fields; with --env as well, the file's settings on that environment."""
    num_seeds: Annotated[int | None, tyro.conf.arg(help_behavior_hint="(default: 1)")] = None
    """Independent seeds, trained in parallel (vmap)."""
    seed: Seed = None
    """Base random seed; seed i of the run uses jax.random.split(key(seed), num_seeds)[i]."""
    logdir: Annotated[Path | None, tyro.conf.arg(help_behavior_hint="(default: runs/<env>-<timestamp>)")] = None
    """The run directory."""
    checkpoint_every: CheckpointEvery = None
    """Save a checkpoint (and flush metrics) every this many updates."""
    resume: OptionalPath = None
    """Continue the run in this directory from its last checkpoint (its config and seeds are reused)."""
    stop_after: StopAfter = None
    """Stop, resumably, once this many updates are done in total (time-boxed jobs; continue with --resume)."""
    print_config: Flag = False
    """Print the config a run would use (after --env, --config-file and the flags; with --resume, the run's) as TOML,
    usable as a --config-file, and exit without training."""
    quiet: Flag = False
    """No progress bar and no start-up lines (the final summary is still printed)."""
    tensorboard: Flag = False
    """Also log to <logdir>/tensorboard (needs tensorboardX)."""
    wandb: Flag = False
    """Also log to Weights & Biases (needs wandb)."""
    wandb_mode: Literal["offline", "online"] = "offline"
    """W&B mode; offline needs no network (upload later with `wandb sync <logdir>/wandb/...`)."""
    hosts: HostsGroup = dataclasses.field(default_factory=Hosts)
    config: Overrides = dataclasses.field(default_factory=ConfigOverrides)


@dataclasses.dataclass(frozen=True)
class Pbt:
    """Population-based training: P members of one config train in one compiled program; every --ready-every updates
    each member of the bottom --quantile (by its return over those updates) copies the weights of a member of the top
    --quantile and perturbs the copied hyperparameters (x0.8 or x1.2 within a range, a neighbouring choice).

    Writes <logdir>/config.json, run.json, metrics.jsonl (one line per update and member, the member under "seed"),
    lineage.json and lineage.png (who copied whom, each member's hyperparameters over time), checkpoints/ and
    summary.json. `eval`, `export` and `compare` take the run, --seed-index picking the member."""

    search: Annotated[tuple[str, ...] | None, tyro.conf.arg(
        metavar="NAME=LOW:HIGH|NAME=A,B,...", help_behavior_hint="(default: learning_rate=LR/4:LR*4)")] = None
    """The searched float hyperparameters: a range NAME=LOW:HIGH (log-uniform start when LOW > 0) or choices
    NAME=A,B,C, e.g. --search learning_rate=1e-4:1e-3 entropy_coeff=0,0.01,0.05."""
    population: Annotated[int | None, tyro.conf.arg(help_behavior_hint=f"(default: {DEFAULT_POPULATION})")] = None
    """Members P (all train at once; split over the devices when P divides by their number)."""
    ready_every: Annotated[int | None, tyro.conf.arg(
        help_behavior_hint="(default: the divisor of the run's updates nearest a tenth of them)")] = None
    """Updates between generations; must divide the run's number of updates."""
    quantile: Annotated[float | None, tyro.conf.arg(help_behavior_hint=f"(default: {DEFAULT_QUANTILE})")] = None
    """The fraction of the population replaced each generation (and copied from), in (0, 0.5]."""
    env: Env = None
    """A gymnax environment id (its shipped config), or a .toml/.json config file."""
    config_file: OptionalPath = None
    """A .toml/.json file of PPOConfig fields."""
    seed: Seed = None
    """Base random seed: member i trains with jax.random.split(key(seed), P)[i]."""
    logdir: Annotated[Path | None, tyro.conf.arg(help_behavior_hint="(default: runs/<env>-pbt-<timestamp>)")] = None
    """The run directory."""
    checkpoint_every: CheckpointEvery = None
    """Save a checkpoint, the metrics and the lineage every this many updates (anywhere in a generation)."""
    resume: OptionalPath = None
    """Continue the PBT run in this directory from its last checkpoint, bit-identically."""
    stop_after: StopAfter = None
    """Stop, resumably, once this many updates are done in total."""
    quiet: Flag = False
    """No progress bar and no start-up lines (the final summary is still printed)."""
    hosts: HostsGroup = dataclasses.field(default_factory=Hosts)
    config: Overrides = dataclasses.field(default_factory=ConfigOverrides)


@dataclasses.dataclass(frozen=True)
class Sweep:
    """Train every setting of a grid (or a list) of float hyperparameters x --num-seeds seeds of one config in one
    compiled program, the cells split over the local devices (one per CPU core on a CPU).

    Writes <logdir>/<setting>/ for each setting (config.json, run.json, metrics.jsonl, its final checkpoint and
    summary.json: `eval`, `export`, `plot` and `compare` read it as a `train` run), <logdir>/summary.md and
    summary.json (the settings ranked by final return with a 95% interval over seeds, the best marked) and
    <logdir>/curves.png (every setting's learning curve)."""

    grid: Annotated[tuple[str, ...] | None, tyro.conf.arg(metavar="NAME=A,B,...")] = None
    """A swept float hyperparameter and its values, e.g. --grid learning_rate=1e-4,3e-4 entropy_coeff=0,0.01 (the
    Cartesian product)."""
    list_file: Annotated[Path | None, tyro.conf.arg(name="list", metavar="FILE.toml")] = None
    """A TOML file of settings instead of a grid: [[setting]] tables of NAME = value (names not given keep the
    config's value)."""
    env: Env = None
    """A gymnax environment id (its shipped config), or a .toml/.json config file."""
    config_file: OptionalPath = None
    """A .toml/.json file of PPOConfig fields."""
    num_seeds: Annotated[int | None, tyro.conf.arg(help_behavior_hint="(default: 2)")] = None
    """Seeds per setting; every setting trains on the same seeds."""
    seed: Seed = None
    """Base random seed: seed i of every setting uses jax.random.split(key(seed), num_seeds)[i]."""
    logdir: Annotated[Path | None, tyro.conf.arg(help_behavior_hint="(default: runs/<env>-sweep-<timestamp>)")] = None
    """The sweep's directory (a run directory per setting inside)."""
    quiet: Flag = False
    """No start-up lines (the table is still printed)."""
    hosts: HostsGroup = dataclasses.field(default_factory=Hosts)
    config: Overrides = dataclasses.field(default_factory=ConfigOverrides)


@dataclasses.dataclass(frozen=True)
class Eval:
    """Evaluate a trained policy from a checkpoint: returns over N episodes, optionally a GIF of one episode."""

    path: tyro.conf.Positional[Path]
    """A run directory (its latest checkpoint), its checkpoints/ directory, or checkpoints/<update>."""
    episodes: int = 32
    """Episodes to play (in parallel)."""
    sample: Flag = False
    """Sample actions from the policy instead of taking the greedy (most likely / mean) action."""
    seed_index: int = 0
    """Which of the run's seeds to evaluate."""
    eval_seed: int = 0
    """Random seed of the evaluation episodes."""
    gif: Annotated[Path | None, tyro.conf.arg(help_behavior_hint="")] = None
    """Also render one episode to this GIF (gymnax's visualiser: classic control, Catch, MinAtar, some misc)."""
    gif_max_steps: int = 300
    """Longest episode rendered to the GIF."""


@dataclasses.dataclass(frozen=True)
class Export:
    """Export a trained policy's greedy action (observation normalisation built in) as ONNX or StableHLO, for use
    without purejaxppo; a .json description of inputs and outputs is written next to it (see docs/export.md)."""

    path: tyro.conf.Positional[Path]
    """A run directory (its latest checkpoint), its checkpoints/ directory, or checkpoints/<update>."""
    format: Literal["onnx", "stablehlo"]
    """onnx (needs the export extra: jax2onnx, onnxruntime) or stablehlo (jax.export's serialized program)."""
    seed_index: int = 0
    """Which of the run's seeds to export."""
    out: Annotated[Path | None, tyro.conf.arg(help_behavior_hint="(default: <run>/policy_seed<I>.onnx|.stablehlo)")
                   ] = None
    """The file to write."""
    batch_size: Annotated[int | None, tyro.conf.arg(help_behavior_hint="(default: dynamic, any batch size)")] = None
    """A fixed batch size for the exported function's inputs."""


@dataclasses.dataclass(frozen=True)
class Plot:
    """Learning curves of one or more runs as a PNG: per run the mean over seeds, with a 95% bootstrap band (2+ seeds)
    and the interquartile mean (dotted, 4+ seeds)."""

    runs: tyro.conf.Positional[tuple[Path, ...]]
    """Run directories (each with a metrics.jsonl)."""
    out: Annotated[Path | None, tyro.conf.arg(
        help_behavior_hint="(default: <run>/learning_curves.png for one run, ./learning_curves.png for several)")
    ] = None
    """The PNG to write."""
    metric: str = "episode_return"
    """Which metric of metrics.jsonl to plot."""
    smooth: Annotated[int | None, tyro.conf.arg(help_behavior_hint="(default: about 1/50 of the updates)")] = None
    """Moving-average window over updates (1: none)."""
    labels: Annotated[tuple[str, ...] | None, tyro.conf.arg(help_behavior_hint="(default: run names)")] = None
    """Legend labels, one per run."""
    title: Annotated[str | None, tyro.conf.arg(help_behavior_hint="")] = None
    """Figure title."""


@dataclasses.dataclass(frozen=True)
class Compare:
    """A table of runs side by side: final greedy return (each seed's latest checkpoint, evaluated now; mean, IQM and
    95% bootstrap CI over seeds), steps per seed, wall time and the settings that differ between the runs."""

    runs: tyro.conf.Positional[tuple[Path, ...]]
    """Run directories."""
    episodes: int = 32
    """Evaluation episodes per seed."""
    eval_seed: int = 0
    """Random seed of the evaluation episodes (the same for every seed and run)."""
    csv: Flag = False
    """Print CSV (raw numbers, a note column) instead of an aligned table."""
    markdown: Flag = False
    """Print a Markdown table."""


@dataclasses.dataclass(frozen=True)
class ListEnvs:
    """List the gymnax environments (* marks those with a shipped config) and the other suites, each installed or
    not."""


def _help_in_paragraphs(*commands: type) -> None:
    """Hand the commands' docstrings to tyro with each paragraph on one line.

    tyro keeps a docstring's line break wherever the next line does not start with a letter: always in an attribute
    docstring (its continuation lines are indented), and in a class docstring before "--quantile", "95%", "`eval`".
    ``--help`` then breaks the sentence there, at any width. So each command's description (``__doc__``) and each
    field's docstring (as the field's "help" metadata, which tyro reads before the docstring) are rewrapped here; the
    source stays wrapped at 120 columns. Without the source (a frozen install), tyro reads the docstrings as they are.
    """
    import ast
    import inspect

    def paragraphs(text: str) -> str:
        return "\n\n".join(" ".join(p.split()) for p in re.split(r"\n\s*\n", inspect.cleandoc(text)) if p.strip())

    try:
        tree = ast.parse(Path(__file__).read_text(encoding="utf-8"))
    except (OSError, SyntaxError):
        return
    classes = {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}
    for cls in commands:
        if cls.__doc__:
            cls.__doc__ = paragraphs(cls.__doc__)
        body = classes[cls.__name__].body if cls.__name__ in classes else []
        docs = {stmt.target.id: doc.value.value for stmt, doc in zip(body, body[1:])
                if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and isinstance(doc, ast.Expr)
                and isinstance(doc.value, ast.Constant) and isinstance(doc.value.value, str)}
        for field in dataclasses.fields(cls):
            if field.name in docs and "help" not in field.metadata:
                field.metadata = types.MappingProxyType({**field.metadata, "help": paragraphs(docs[field.name])})


_help_in_paragraphs(Train, Pbt, Sweep, Eval, Export, Plot, Compare, ListEnvs)

Command = (
    Annotated[Train, tyro.conf.subcommand("train")]
    | Annotated[Pbt, tyro.conf.subcommand("pbt")]
    | Annotated[Sweep, tyro.conf.subcommand("sweep")]
    | Annotated[Eval, tyro.conf.subcommand("eval")]
    | Annotated[Export, tyro.conf.subcommand("export")]
    | Annotated[Plot, tyro.conf.subcommand("plot")]
    | Annotated[Compare, tyro.conf.subcommand("compare")]
    | Annotated[ListEnvs, tyro.conf.subcommand("list-envs")]
)


# ------------------------------------------------------------------------------------------------------ parsing
class UsageError(ValueError):
    """Bad command-line input (printed as one ``error:`` line, exit status 2)."""


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_BOX = re.compile(r"[\u2500-\u257f]")


def condense_tyro_error(text: str) -> str:
    """tyro's boxed, multi-line error as one line: the message, plus the closest flag when tyro suggests one."""
    sections: list[list[str]] = [[]]
    for raw in _ANSI.sub("", text).splitlines():
        if re.fullmatch(r"[\s\u2500-\u257f]*\u2500{3,}[\s\u2500-\u257f]*", raw) and sections[-1]:
            sections.append([])  # a horizontal rule inside the box
            continue
        line = " ".join(_BOX.sub(" ", raw).split())
        if line:
            sections[-1].append(line)
    sections = [s for s in sections if s]
    if not sections:
        return "invalid command line (see --help)"
    head = sections[0]
    if len(head) > 1 and len(head[0].split()) <= 3 and not head[0].endswith("."):
        title, head = head[0], head[1:]  # the box title: "Unrecognized options", "Value error", ...
        if head[0].startswith("Expected"):  # "Missing subcommand: Expected one of ..."
            head = [f"{title.lower()}:", *head]
    message = re.sub(r"'None', |, 'None'", "", " ".join(head))  # None is never accepted (DisallowNone)
    for section in sections[1:]:
        if section[0].startswith("Perhaps you meant") and len(section) > 1:
            message += f" Did you mean {section[1]}?"
    message = re.sub(r"\s*Got errors:.*$", "", message)
    return message + " (see --help)"


def merge_repeated(argv: list[str], flag: str) -> list[str]:
    """``--grid a=1,2 --grid b=3`` -> ``--grid a=1,2 b=3``: a repeated list flag keeps every value (tyro would keep
    the last flag's only)."""
    out: list[str] = []
    seen = False
    for arg in argv:
        if arg == flag:
            if seen:
                continue
            seen = True
        out.append(arg)
    return out


def parse(argv: Sequence[str]) -> Any:
    """The command dataclass for `argv`; raises SystemExit(0) after --help and UsageError on bad input."""
    captured = io.StringIO()
    try:
        with contextlib.redirect_stderr(captured):
            cmd = tyro.cli(Command, args=merge_repeated(flat_spelling(argv), "--grid"), prog="purejaxppo",
                           description=DESCRIPTION,
                           config=(tyro.conf.DisallowNone,))
    except SystemExit as e:
        if e.code in (0, None):
            sys.stderr.write(captured.getvalue())
            raise
        raise UsageError(condense_tyro_error(captured.getvalue())) from None
    if isinstance(cmd, Pbt) and sum(arg.partition("=")[0] == "--search" for arg in argv) > 1:
        # a repeated flag keeps only its last values: the first --search's hyperparameters would be dropped
        raise UsageError("--search is given more than once; give all the searched hyperparameters after one --search")
    return cmd



def check_positive(cmd: Any, *flags: str) -> None:
    """Refuse a value below 1 for any of `flags` (``"num-seeds"``: the field ``cmd.num_seeds``) given in `cmd`."""
    for flag in flags:
        value = getattr(cmd, flag.replace("-", "_"))
        if value is not None and value < 1:
            raise UsageError(f"--{flag} must be an integer >= 1, got {value}")


def check_seed(seed: int | None, flag: str = "seed") -> None:
    low, high = SEED_RANGE
    if seed is not None and not low <= seed <= high:
        raise UsageError(f"--{flag} must be an integer in [{low}, 2**32 - 1] (jax.random.key's 32-bit seed), "
                         f"got {seed}")
