"""The ``purejaxppo`` command line (also ``python -m purejaxppo``): train, pbt, eval, export, plot, compare, list-envs.

    purejaxppo train                                   # CartPole-v1, its shipped config, 1 seed
    purejaxppo train --env Breakout-MinAtar --num-seeds 4 --learning-rate 3e-4 --checkpoint-every 100
    purejaxppo train --config-file my.toml --config.gamma 0.995 --logdir runs/mine
    purejaxppo train --resume runs/mine                # continue a stopped or killed run, bit-identically
    purejaxppo pbt --env Pendulum-v1 --population 8 --search learning_rate=1e-4:3e-3 entropy_coeff=0,0.01
    purejaxppo eval runs/mine --episodes 100 [--sample] [--gif cartpole.gif]
    purejaxppo export runs/mine --format onnx [--seed-index 0] [--out policy.onnx]
    purejaxppo plot runs/a runs/b --out curves.png
    purejaxppo compare runs/a runs/b [--episodes 32] [--csv | --markdown]
    purejaxppo list-envs
    purejaxppo --version

Why tyro: every command is a typed dataclass below, and tyro builds the parser, the type conversion, the choices and
the ``--help`` text from the field types and their docstrings, so the command line cannot drift from the code and no
parser is written by hand. Every `PPOConfig` field is also a flag (``--learning-rate``, also accepted as
``--config.learning-rate`` and with underscores), generated from `PPOConfig`'s source (`purejaxppo.configfields`:
nothing here imports jax until a command runs, so ``--help`` and a bad flag answer at once). A flag left out keeps
the value of the env's shipped config (or of the config file); ``train --print-config`` shows the result.
``--env-name`` is ``--env``.

Errors in the input (a bad flag, a bad value, a value `PPOConfig` rejects, an unusable checkpoint) and file-system
faults (an unwritable --logdir, a full disk) are printed as one line, ``error: ...``, naming the flag, field or file
and what is allowed, with exit status 2 and no traceback; everything that can be checked is checked before the run
directory is created. Training that goes non-finite (NaN or infinite losses, gradients or parameters) stops at that
update with exit status 3, keeping the checkpoints saved before it. Set ``PUREJAXPPO_DEBUG=1`` to get the traceback
instead.

A run directory is locked while it trains (`purejaxppo.runs.runlock`): a second process is refused, naming the holder's
pid; the lock file is removed on exit, and one left by a killed process is taken over with a warning. Resuming picks
the newest checkpoint that reads back intact (a corrupt one is moved aside with a warning) and leaves a finished run
untouched.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import io
import json
import math
import os
import re
import sys
import time
import types
import typing
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import tyro

from purejaxppo.configfields import FIELDS, FieldSpec

if typing.TYPE_CHECKING:
    from purejaxppo.config import PPOConfig

EXIT_USAGE = 2
EXIT_DIVERGED = 3
EXIT_INTERRUPTED = 130
SEED_RANGE = (0, 2**32 - 1)  # jax.random.key takes a 32-bit seed without x64
EXTRAS = {"tensorboard": ("tensorboardX", "tensorboard"), "wandb": ("wandb", "wandb")}  # flag: (module, extra)
DEFAULT_ENV = "CartPole-v1"
DEFAULT_CHECKPOINTS_PER_RUN = 10
DEFAULT_POPULATION, DEFAULT_QUANTILE = 8, 0.25  # purejaxppo pbt
DESCRIPTION = ("PPO in pure JAX: train on gymnax environments (one jitted program per run, many seeds at once), "
               "population-based training, "
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
@dataclasses.dataclass(frozen=True)
class Train:
    """Train PPO on one environment for one or more seeds (vmapped in one compiled program).

    Writes <logdir>/config.json, run.json, metrics.jsonl (one line per update and seed), checkpoints/ and
    summary.json; shows a progress bar when stderr is a terminal."""

    env: Annotated[str | None, tyro.conf.arg(help_behavior_hint=f"(default: {DEFAULT_ENV})")] = None
    """A gymnax environment id (its shipped config, else PPOConfig defaults), or a .toml/.json config file. Also
    spelled --env-name."""
    config_file: Annotated[Path | None, tyro.conf.arg(help_behavior_hint="")] = None
    """A .toml/.json file of PPOConfig fields; with --env as well, the file's settings on that environment."""
    num_seeds: Annotated[int | None, tyro.conf.arg(help_behavior_hint="(default: 1)")] = None
    """Independent seeds, trained in parallel (vmap)."""
    seed: Annotated[int | None, tyro.conf.arg(help_behavior_hint="(default: 0)")] = None
    """Base random seed; seed i of the run uses jax.random.split(key(seed), num_seeds)[i]."""
    logdir: Annotated[Path | None, tyro.conf.arg(help_behavior_hint="(default: runs/<env>-<timestamp>)")] = None
    """The run directory."""
    checkpoint_every: Annotated[
        int | None, tyro.conf.arg(help_behavior_hint=f"(default: about {DEFAULT_CHECKPOINTS_PER_RUN} per run)")
    ] = None
    """Save a checkpoint (and flush metrics) every this many updates."""
    resume: Annotated[Path | None, tyro.conf.arg(help_behavior_hint="")] = None
    """Continue the run in this directory from its last checkpoint (its config and seeds are reused)."""
    stop_after: Annotated[int | None, tyro.conf.arg(help_behavior_hint="(default: the whole budget)")] = None
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
    config: Annotated[ConfigOverrides, tyro.conf.arg(help=CONFIG_GROUP_HELP)] = \
        dataclasses.field(default_factory=ConfigOverrides)


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
    env: Annotated[str | None, tyro.conf.arg(help_behavior_hint=f"(default: {DEFAULT_ENV})")] = None
    """A gymnax environment id (its shipped config), or a .toml/.json config file."""
    config_file: Annotated[Path | None, tyro.conf.arg(help_behavior_hint="")] = None
    """A .toml/.json file of PPOConfig fields."""
    seed: Annotated[int | None, tyro.conf.arg(help_behavior_hint="(default: 0)")] = None
    """Base random seed: member i trains with jax.random.split(key(seed), P)[i]."""
    logdir: Annotated[Path | None, tyro.conf.arg(help_behavior_hint="(default: runs/<env>-pbt-<timestamp>)")] = None
    """The run directory."""
    checkpoint_every: Annotated[
        int | None, tyro.conf.arg(help_behavior_hint=f"(default: about {DEFAULT_CHECKPOINTS_PER_RUN} per run)")
    ] = None
    """Save a checkpoint, the metrics and the lineage every this many updates (anywhere in a generation)."""
    resume: Annotated[Path | None, tyro.conf.arg(help_behavior_hint="")] = None
    """Continue the PBT run in this directory from its last checkpoint, bit-identically."""
    stop_after: Annotated[int | None, tyro.conf.arg(help_behavior_hint="(default: the whole budget)")] = None
    """Stop, resumably, once this many updates are done in total."""
    quiet: Flag = False
    """No progress bar and no start-up lines (the final summary is still printed)."""
    config: Annotated[ConfigOverrides, tyro.conf.arg(help=CONFIG_GROUP_HELP)] = \
        dataclasses.field(default_factory=ConfigOverrides)


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


_help_in_paragraphs(Train, Pbt, Eval, Export, Plot, Compare, ListEnvs)

Command = (
    Annotated[Train, tyro.conf.subcommand("train")]
    | Annotated[Pbt, tyro.conf.subcommand("pbt")]
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


def parse(argv: Sequence[str]) -> Any:
    """The command dataclass for `argv`; raises SystemExit(0) after --help and UsageError on bad input."""
    captured = io.StringIO()
    try:
        with contextlib.redirect_stderr(captured):
            cmd = tyro.cli(Command, args=flat_spelling(argv), prog="purejaxppo", description=DESCRIPTION,
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


# -------------------------------------------------------------------------------------------------------- train
def requested_config(cmd: Train) -> PPOConfig:
    """The config `cmd` asks for: the env's (or file's) config with the command-line overrides applied."""
    from purejaxppo.configs import is_config_path, load_config

    if cmd.env is not None and not cmd.env.strip():
        raise UsageError("--env is empty: give an environment name (purejaxppo list-envs lists them) or a config file")
    if cmd.config_file is not None:
        config = load_config(Path(cmd.config_file))
        if cmd.env is not None:
            if is_config_path(cmd.env):
                raise UsageError("give the config file with --config-file or --env, not both")
            config = config.replace(env_name=cmd.env)
    else:
        config = load_config(DEFAULT_ENV if cmd.env is None else cmd.env)
    overrides = override_values(cmd.config)
    return config.replace(**overrides) if overrides else config


def _check_positive(name: str, value: int | None) -> None:
    if value is not None and value < 1:
        raise UsageError(f"--{name} must be an integer >= 1, got {value}")


def default_run_dir(env_name: str) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = Path("runs") / f"{env_name.replace(':', '-').replace('/', '-')}-{stamp}"
    path, i = base, 1
    while path.exists():
        i += 1
        path = base.with_name(f"{base.name}-{i}")
    return path


def default_checkpoint_every(num_updates: int) -> int:
    return max(1, math.ceil(num_updates / DEFAULT_CHECKPOINTS_PER_RUN))


@dataclasses.dataclass(frozen=True)
class RunPlan:
    """Everything the training loop needs, resolved from the command line (and the run directory on resume)."""

    config: PPOConfig
    num_seeds: int
    seed: int
    run_dir: Path
    checkpoint_every: int
    run_id: str
    resumed: bool


def _check_seed(seed: int | None, flag: str = "seed") -> None:
    low, high = SEED_RANGE
    if seed is not None and not low <= seed <= high:
        raise UsageError(f"--{flag} must be an integer in [{low}, 2**32 - 1] (jax.random.key's 32-bit seed), "
                         f"got {seed}")


def check_extras(cmd: Train) -> None:
    """Refuse --tensorboard/--wandb without their package, before anything is created."""
    for flag, (module, extra) in EXTRAS.items():
        if getattr(cmd, flag) and importlib.util.find_spec(module) is None:
            raise UsageError(f"--{flag} needs {module}: pip install 'purejaxppo[{extra}]'")


def check_new_run_dir(run_dir: Path) -> None:
    """A new run needs a directory that is absent or empty, not a file and not under one."""
    for parent in [run_dir, *run_dir.parents]:
        if parent.exists() and not parent.is_dir():
            where = "is a file" if parent == run_dir else f"lies under the file {parent}"
            raise UsageError(f"--logdir {run_dir} {where}; choose a directory")
    if run_dir.exists() and any(run_dir.iterdir()):
        raise UsageError(f"--logdir {run_dir} already holds a run: continue it with --resume {run_dir}, "
                         "or choose another --logdir")


def plan_new_run(cmd: Train) -> RunPlan:
    """Resolve a fresh run (nothing is created yet: see `create_run_dir`)."""
    config = requested_config(cmd)
    every = cmd.checkpoint_every or default_checkpoint_every(config.num_updates)
    run_dir = Path(cmd.logdir) if cmd.logdir is not None else default_run_dir(config.env_name)
    check_new_run_dir(run_dir)
    return RunPlan(config, cmd.num_seeds or 1, cmd.seed or 0, run_dir, every, uuid.uuid4().hex[:12], resumed=False)


def create_run_dir(plan: RunPlan, extra: dict[str, Any] | None = None) -> None:
    """Create a new run's directory with its config.json and run.json (plus `extra` fields); on failure remove
    whatever was created."""
    import jax

    import purejaxppo
    from purejaxppo.runs.logs import CONFIG_FILE, RUN_FILE, write_json

    run_dir = plan.run_dir
    created = [p for p in [run_dir, *run_dir.parents] if not p.exists()][::-1]  # outermost first
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_json(run_dir / CONFIG_FILE, plan.config.to_dict())
        write_json(run_dir / RUN_FILE, {
            "run_id": plan.run_id, "env_name": plan.config.env_name, "num_seeds": plan.num_seeds, "seed": plan.seed,
            "checkpoint_every": plan.checkpoint_every, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "purejaxppo_version": purejaxppo.__version__, "jax_version": jax.__version__, **(extra or {}),
        })
    except OSError as e:
        for name in (CONFIG_FILE, RUN_FILE, CONFIG_FILE + ".tmp", RUN_FILE + ".tmp"):
            with contextlib.suppress(OSError):
                (run_dir / name).unlink()
        for path in reversed(created):
            with contextlib.suppress(OSError):
                path.rmdir()
        raise UsageError(f"cannot create the run directory {run_dir}: {e.strerror or e}") from None


def plan_resumed_run(cmd: Train) -> RunPlan:
    """Read a run directory back; any config, seed or seed-count flags given must agree with it."""
    from purejaxppo.runs.checkpoint import checkpoint_dir, config_differences
    from purejaxppo.runs.logs import CONFIG_FILE, RUN_FILE, read_json

    run_dir = Path(cmd.resume)
    if not (run_dir / RUN_FILE).is_file() or not (run_dir / CONFIG_FILE).is_file():
        raise UsageError(f"--resume {run_dir}: not a run directory (no {RUN_FILE} and {CONFIG_FILE})")
    if checkpoint_dir(run_dir).exists() and not checkpoint_dir(run_dir).is_dir():
        raise UsageError(f"--resume {run_dir}: {checkpoint_dir(run_dir)} is a file, not the checkpoint directory; "
                         "move it away")
    if cmd.logdir is not None and Path(cmd.logdir).resolve() != run_dir.resolve():
        raise UsageError("--resume continues the run in its own directory; leave out --logdir")
    info = read_json(run_dir / RUN_FILE)
    if isinstance(cmd, Train) and info.get("kind") == "pbt":
        raise UsageError(f"--resume {run_dir}: this is a PBT run; continue it with purejaxppo pbt --resume {run_dir}")
    missing = [k for k in ("run_id", "num_seeds", "seed", "checkpoint_every") if k not in info]
    if missing:
        raise UsageError(f"--resume {run_dir}: {RUN_FILE} lacks {missing}; it was not written by purejaxppo train")
    from purejaxppo.config import PPOConfig

    try:
        config = PPOConfig.from_dict(read_json(run_dir / CONFIG_FILE))
    except (TypeError, ValueError) as e:
        raise UsageError(f"{run_dir / CONFIG_FILE}: {e}") from None
    overrides = override_values(cmd.config)
    if cmd.env is not None or cmd.config_file is not None or overrides:
        asked = (requested_config(cmd) if cmd.env is not None or cmd.config_file is not None else
                 config.replace(**overrides))
        diffs = config_differences(config.to_dict(), asked.to_dict())
        if diffs:
            raise UsageError(f"--resume {run_dir}: the run was trained with a different config ("
                             + "; ".join(d.replace("(checkpoint)", "(run)").replace("(this run)", "(asked)")
                                         for d in diffs) + "); a resumed run keeps its config")
    for flag, value in (("num-seeds", getattr(cmd, "num_seeds", None)), ("seed", cmd.seed)):
        saved = info[flag.replace("-", "_")]
        if value is not None and value != saved:
            raise UsageError(f"--resume {run_dir}: the run has --{flag} {saved}, not {value}")
    every = cmd.checkpoint_every or int(info["checkpoint_every"])
    return RunPlan(config, int(info["num_seeds"]), int(info["seed"]), run_dir, every, info["run_id"], resumed=True)


class Timing(typing.NamedTuple):
    """Where a training session's time went (see `purejaxppo.runs.logs` for the summary.json keys)."""

    wall: float  # compile + train
    compile: float  # compiling the chunk program (about 0 when this process had compiled it already)
    train: float  # the training loop: running the chunks, writing metrics, saving checkpoints


def summarize(plan: RunPlan, updates_done: int, steps_this_session: int, timing: Timing,
              diverged: str | None = None) -> dict[str, Any]:
    """The summary.json of a run, from its whole metrics.jsonl."""
    import numpy as np

    import purejaxppo
    from purejaxppo.runs.checkpoint import checkpoint_dir
    from purejaxppo.runs.logs import FINAL_WINDOW, METRICS_FILE, curves, final_returns, json_scalar, read_records

    records = read_records(plan.run_dir / METRICS_FILE)
    finals = final_returns(curves(records)[1]) if records else np.full(plan.num_seeds, np.nan)
    finite = finals[np.isfinite(finals)]
    return {
        "env_name": plan.config.env_name,
        "num_seeds": plan.num_seeds,
        "seed": plan.seed,
        "updates": updates_done,
        "complete": updates_done >= plan.config.num_updates,
        "diverged": diverged,  # None, or what went non-finite and where (the run stopped there)
        "env_steps_per_seed": updates_done * plan.config.batch_size,
        "episodes_finished": int(sum(r.get("episodes_finished") or 0 for r in records)),
        "final_episode_return": {
            "window_updates": FINAL_WINDOW,  # per seed: the mean episode return over its last 10 updates
            "mean": json_scalar(finite.mean()) if finite.size else None,
            "std": json_scalar(finite.std()) if finite.size else None,
            "per_seed": [json_scalar(v) for v in finals],
        },
        "wall_seconds": round(timing.wall, 3),
        "compile_seconds": round(timing.compile, 3),
        "train_seconds": round(timing.train, 3),
        "steps_per_second": round(steps_this_session / timing.train, 1) if timing.train > 0 else None,
        "checkpoint": str(checkpoint_dir(plan.run_dir) / str(updates_done)),
        "purejaxppo_version": purejaxppo.__version__,
    }


def summary_line(summary: dict[str, Any], run_dir: Path, unit: str = "seed") -> str:
    """The run's one-line result; `unit` names what the batch holds (seeds, or a PBT run's members)."""
    from purejaxppo.runs.logs import FINAL_WINDOW

    ret = summary["final_episode_return"]
    if ret["mean"] is None:
        episodes = summary.get("episodes_finished", 0)
        shown = ("n/a (no episode finished)" if not episodes else
                 f"n/a ({episodes} episodes finished, none with a finite return)")
    elif summary["num_seeds"] > 1:
        shown = f"{ret['mean']:.2f} ± {ret['std']:.2f} over {summary['num_seeds']} {unit}s"
    else:
        shown = f"{ret['mean']:.2f}"
    timing = f"{summary['wall_seconds']:.1f} s"
    if summary.get("compile_seconds") is not None and summary.get("steps_per_second") is not None:
        timing += (f" ({summary['compile_seconds']:.1f} s compiling, then {summary['steps_per_second']:,.0f} steps/s "
                   f"over all {unit}s)")
    return (f"{summary['env_name']}: {summary['env_steps_per_seed']:,} steps x {summary['num_seeds']} {unit}(s), "
            f"{summary['updates']} updates in {timing}. Final mean return (last "
            f"{FINAL_WINDOW} updates): {shown}. "
            f"Run: {run_dir}")


class Divergence(typing.NamedTuple):
    """The first update of a chunk where training went non-finite."""

    index: int  # row of the chunk's metrics
    update: int  # 1-based update number
    message: str


def find_divergence(metrics: dict[str, Any]) -> Divergence | None:
    """The first row of a chunk's metrics ``{name: [n, S]}`` whose "nonfinite" count is above 0, described."""
    import numpy as np

    from purejaxppo.training.metrics import DIVERGENCE_METRICS

    counts = np.asarray(metrics["nonfinite"])
    rows = np.flatnonzero((counts > 0).any(axis=1))
    if rows.size == 0:
        return None
    i = int(rows[0])
    seeds = [int(s) for s in np.flatnonzero(counts[i] > 0)]
    names = [n for n in DIVERGENCE_METRICS if not np.isfinite(np.asarray(metrics[n][i], np.float64)).all()]
    update = int(np.asarray(metrics["update"])[i].max())
    what = (", ".join(names) + " and " if names else "") + f"{int(counts[i].sum()):,} non-finite values in all"
    return Divergence(i, update, f"training diverged at update {update} (seed{'s' if len(seeds) > 1 else ''} "
                                 f"{', '.join(map(str, seeds))}): non-finite {what} (parameters, loss terms, "
                                 "gradient norm)")


def initial_states(plan: RunPlan, runner, ckpt, say) -> tuple[Any, int]:
    """``(batched [S] RunState, updates done)``: the newest intact checkpoint when resuming, else freshly initialised.

    A corrupt newest checkpoint is moved aside with a warning and the one before it is used. A resumed run with no
    checkpoint yet (killed during its first interval) starts again from update 0, which is the same start:
    initialisation is a pure function of the seeds.
    """
    from purejaxppo.runs.checkpoint import RunLayout, abstract_state, batched_keys

    layout = RunLayout(plan.config, plan.num_seeds, plan.seed)
    if plan.resumed and ckpt.latest_step() is not None:
        warn = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
        states, meta = ckpt.restore_newest_intact(abstract_state(runner.fns.init, layout), layout, warn)
        say(f"Resuming {plan.run_dir} from update {meta['update']} of {plan.config.num_updates}")
        return states, int(meta["update"])
    if plan.resumed:
        say(f"Resuming {plan.run_dir}: no checkpoint yet, starting from update 0")
    return runner.init(batched_keys(plan.seed, plan.num_seeds)), 0


def finished_update(plan: RunPlan, runner, stop_after: int | None) -> int | None:
    """For a resumed run already at its end (or past `stop_after`): the update of its newest checkpoint, which must
    read back intact and belong to the run (otherwise None, and resuming reports or repairs it)."""
    from purejaxppo.runs.checkpoint import Checkpointer, CheckpointError, RunLayout, abstract_state, checkpoint_dir

    if not plan.resumed or not checkpoint_dir(plan.run_dir).is_dir():
        return None
    end = plan.config.num_updates if stop_after is None else min(stop_after, plan.config.num_updates)
    layout = RunLayout(plan.config, plan.num_seeds, plan.seed)
    with Checkpointer(checkpoint_dir(plan.run_dir), read_only=True) as ckpt:
        done = ckpt.latest_step()
        if done is None or done < end:
            return None
        try:
            ckpt.restore(abstract_state(runner.fns.init, layout), layout, done)
        except CheckpointError:
            return None
    return done


def print_config(cmd: Train) -> int:
    """--print-config: the config `cmd` would train with, as a TOML config file, and the run's size as comments."""
    from purejaxppo.configs import config_toml

    if cmd.resume is not None:
        plan = plan_resumed_run(cmd)
        config, seeds, seed, source = plan.config, plan.num_seeds, plan.seed, f"the run {plan.run_dir}"
    else:
        config, seeds, seed = requested_config(cmd), cmd.num_seeds or 1, cmd.seed or 0
        source = f"--config-file {cmd.config_file}" if cmd.config_file is not None else (
            f"--env {DEFAULT_ENV if cmd.env is None else cmd.env}")
    every = cmd.checkpoint_every or default_checkpoint_every(config.num_updates)
    print(config_toml(config, (
        f"PPOConfig from {source}{' with the flags given' if override_values(cmd.config) else ''}\n"
        f"{config.num_updates} updates x {config.batch_size} steps (num_envs x num_steps) = "
        f"{config.timesteps_trained:,} steps per seed\n"
        f"{seeds} seed(s) from base seed {seed}, a checkpoint every {every} updates")), end="", flush=True)
    return 0


def train_command(cmd: Train) -> int:
    """Train (or resume) a run: chunks of `checkpoint_every` updates, each followed by a metrics flush and a save.

    Everything that can be checked is checked before the run directory is created: the flags, the config, the
    extras, the environment (built with its env_kwargs) and the directory itself.
    """
    from purejaxppo.runs.progress import chunk_runner
    from purejaxppo.runs.runlock import RunLock

    _check_positive("num-seeds", cmd.num_seeds)
    _check_positive("checkpoint-every", cmd.checkpoint_every)
    _check_positive("stop-after", cmd.stop_after)
    _check_seed(cmd.seed)
    if cmd.print_config:
        return print_config(cmd)
    check_extras(cmd)
    plan = plan_resumed_run(cmd) if cmd.resume is not None else plan_new_run(cmd)
    runner = chunk_runner(plan.config)  # builds the environment and the policy (no compile yet)
    done = finished_update(plan, runner, cmd.stop_after)
    if done is not None:
        print(f"{plan.run_dir} is already at update {done} of {plan.config.num_updates}"
              + (" (complete)" if done >= plan.config.num_updates else f" (--stop-after {cmd.stop_after})")
              + ": nothing to do, its files are left as they are", flush=True)
        return 0
    if not plan.resumed:
        create_run_dir(plan)
    with RunLock(plan.run_dir) as lock:
        _report_stale_lock(lock)
        return _train_locked(cmd, plan, runner)


def _report_stale_lock(lock) -> None:
    """A warning when the run's lock file was left by a process that did not exit cleanly (killed, or crashed)."""
    if lock.stale_holder:
        print(f"warning: {lock.path} was left by a process that did not exit cleanly ({lock.stale_holder}); taken "
              "over", file=sys.stderr, flush=True)


def _train_locked(cmd: Train, plan: RunPlan, runner) -> int:
    from purejaxppo.runs.checkpoint import Checkpointer, CheckpointError, RunLayout, checkpoint_dir
    from purejaxppo.runs.logs import METRICS_FILE, SUMMARY_FILE, RunLog, RunWriteError, truncate_records, write_json
    from purejaxppo.runs.progress import ProgressBar, device_description, progress_enabled

    config, run_dir = plan.config, plan.run_dir
    layout = RunLayout(config, plan.num_seeds, plan.seed)
    say = (lambda *a: None) if cmd.quiet else (lambda *a: print(*a, flush=True))
    resume_hint = f"continue with: purejaxppo train --resume {run_dir}"
    diverged = None
    with Checkpointer(checkpoint_dir(run_dir)) as ckpt:
        states, start = initial_states(plan, runner, ckpt, say)
        truncate_records(run_dir / METRICS_FILE, start)  # drop metrics of updates after the checkpoint
        say(f"Training {config.env_name} on {device_description()}: {plan.num_seeds} seed(s) x "
            f"{config.num_updates} updates x {config.batch_size} steps ({config.timesteps_trained:,} steps per seed), "
            f"checkpoint every {plan.checkpoint_every} updates -> {run_dir}")
        log = RunLog(run_dir, config.to_dict(), plan.run_id, start * config.batch_size, cmd.tensorboard, cmd.wandb,
                     cmd.wandb_mode, quiet=cmd.quiet)
        bar = ProgressBar(config.timesteps_trained, start * config.batch_size, plan.num_seeds,
                          enabled=progress_enabled(cmd.quiet),
                          desc=config.env_name + (f" x{plan.num_seeds}" if plan.num_seeds > 1 else ""))
        update = start
        end = config.num_updates if cmd.stop_after is None else min(cmd.stop_after, config.num_updates)
        try:
            t0 = time.time()
            if not cmd.quiet:
                print("compiling...", end=" ", flush=True)
            states, compile_seconds = runner.compile(states)
            say(f"compiled in {compile_seconds:.1f} s")
            t_train = time.time()
            while update < end:
                n = min(plan.checkpoint_every, end - update)
                states, metrics = runner.run(states, n, sink=bar)
                diverged = find_divergence(metrics)
                if diverged is not None:  # keep the metrics up to it, and no checkpoint of the non-finite state
                    log.write({k: v[:diverged.index + 1] for k, v in metrics.items()})
                    update = diverged.update
                    break
                log.write(metrics)  # metrics first: a crash before the save only repeats this chunk
                ckpt.save(states, layout)
                update += n
        except KeyboardInterrupt:
            bar.close()
            print(f"interrupted after update {update}; {resume_hint}", file=sys.stderr)
            return EXIT_INTERRUPTED
        except (RunWriteError, CheckpointError) as e:
            raise UsageError(f"{e}. Once the cause is fixed, {resume_hint}") from None
        finally:
            bar.close()
            log.close()
        kept = ckpt.latest_step()
    t_end = time.time()
    summary = summarize(plan, update, (update - start) * config.batch_size * plan.num_seeds,
                        Timing(t_end - t0, compile_seconds, t_end - t_train), diverged.message if diverged else None)
    if diverged is not None:
        summary["checkpoint"] = None if kept is None else str(checkpoint_dir(run_dir) / str(kept))
    write_json(run_dir / SUMMARY_FILE, summary)
    if diverged is not None:
        last = (f"the last finite checkpoint is {summary['checkpoint']} (update {kept})"
                if kept is not None else "no checkpoint was saved before it")
        print(f"error: {diverged.message}; {last}. A smaller --learning-rate or --max-grad-norm usually helps",
              file=sys.stderr, flush=True)
        return EXIT_DIVERGED
    print(summary_line(summary, run_dir), flush=True)
    if not summary["complete"]:
        print(f"stopped at update {update} of {config.num_updates}; {resume_hint}", flush=True)
    return 0


# ---------------------------------------------------------------------------------------------------------- pbt
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
    for name in ("ready-every", "checkpoint-every", "stop-after"):
        _check_positive(name, getattr(cmd, name.replace("-", "_")))
    _check_seed(cmd.seed)
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
    every = cmd.checkpoint_every or default_checkpoint_every(config.num_updates)
    run_dir = Path(cmd.logdir) if cmd.logdir is not None else default_run_dir(f"{config.env_name}-pbt")
    check_new_run_dir(run_dir)
    run = RunPlan(config, population, cmd.seed or 0, run_dir, every, uuid.uuid4().hex[:12], resumed=False)
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


def pbt_command(cmd: Pbt) -> int:
    """Run (or resume) population-based training in chunks of --checkpoint-every updates, each followed by the
    metrics, a checkpoint and the lineage."""
    from purejaxppo.runs.runlock import RunLock

    plan = plan_pbt(cmd)
    run = plan.run
    if not run.resumed:
        create_run_dir(run, {"kind": "pbt", "population": run.num_seeds, "search": plan.space.to_json(),
                             "ready_every": plan.ready_every, "quantile": plan.quantile})
    with RunLock(run.run_dir) as lock:
        _report_stale_lock(lock)
        return _pbt_locked(cmd, plan)


def _pbt_locked(cmd: Pbt, plan: PbtPlan) -> int:
    import jax
    import numpy as np

    from purejaxppo.runs.checkpoint import Checkpointer, CheckpointError, checkpoint_dir
    from purejaxppo.runs.policy import abstract_population_of
    from purejaxppo.runs.logs import (LINEAGE_FILE, LINEAGE_PLOT, SUMMARY_FILE, METRICS_FILE, RunLog, RunWriteError,
                                 truncate_records, write_json)
    from purejaxppo.scale.population import default_mesh, lineage, program
    from purejaxppo.runs.progress import ProgressBar, device_description, progress_enabled
    from purejaxppo.scale.sweeps import gather_to_host

    run, config = plan.run, plan.run.config
    population, run_dir, layout = run.num_seeds, run.run_dir, plan.layout()
    say = (lambda *a: None) if cmd.quiet else (lambda *a: print(*a, flush=True))
    resume_hint = f"continue with: purejaxppo pbt --resume {run_dir}"
    mesh = default_mesh(population)
    prog = program(config, plan.space.shape(), population, plan.ready_every, plan.quantile, mesh,
                   run.checkpoint_every)
    bounds = plan.space.arrays()
    end = config.num_updates if cmd.stop_after is None else min(cmd.stop_after, config.num_updates)
    diverged = None
    with Checkpointer(checkpoint_dir(run_dir)) as ckpt:
        start = 0
        if run.resumed and ckpt.latest_step() is not None:
            warn = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
            state, meta = ckpt.restore_newest_intact(abstract_population_of(layout), layout, warn)
            state, start = jax.device_put(state, prog.shardings), int(meta["update"])
            say(f"Resuming {run_dir} from update {start} of {config.num_updates}")
        else:
            state = prog.init(jax.random.key(run.seed), bounds)
        if start >= end:
            print(f"{run_dir} is already at update {start} of {config.num_updates}: nothing to do", flush=True)
            return 0
        truncate_records(run_dir / METRICS_FILE, start)
        say(f"PBT on {config.env_name}, {device_description()} ({mesh.size} device(s)): {population} members x "
            f"{config.num_updates} updates x {config.batch_size} steps, a generation every {plan.ready_every} "
            f"updates, searching {plan.space.as_dict()}, checkpoint every {run.checkpoint_every} updates -> {run_dir}")
        log = RunLog(run_dir, config.to_dict(), run.run_id, start * config.batch_size)
        bar = ProgressBar(config.timesteps_trained, start * config.batch_size, population,
                          enabled=progress_enabled(cmd.quiet), desc=f"{config.env_name} PBT x{population}")
        update, t0 = start, time.time()
        try:
            if not cmd.quiet:
                print("compiling...", end=" ", flush=True)
            state, _ = jax.block_until_ready(prog.advance(state, bounds, np.int32(0)))  # 0 updates: the executable
            compile_seconds = time.time() - t0
            say(f"compiled in {compile_seconds:.1f} s")
            t_train = time.time()
            while update < end:
                n = min(run.checkpoint_every, end - update)
                state, rows = prog.advance(state, bounds, np.int32(n))
                rows = {k: v[:n] for k, v in gather_to_host(rows).items()}
                rows["update"] = np.repeat(np.arange(update + 1, update + n + 1)[:, None], population, axis=1)
                for i in range(n):
                    bar({k: v[i] for k, v in rows.items()})
                diverged = find_divergence(rows)
                if diverged is not None:
                    log.write({k: v[:diverged.index + 1] for k, v in rows.items()})
                    update = diverged.update
                    break
                log.write(rows)
                ckpt.save(state, layout, step=update + n)
                update += n
                write_json(run_dir / LINEAGE_FILE, lineage_json(lineage(state_lineage(state), plan.space.names),
                                                                 plan, update))
        except KeyboardInterrupt:
            bar.close()
            print(f"interrupted after update {update}; {resume_hint}", file=sys.stderr)
            return EXIT_INTERRUPTED
        except (RunWriteError, CheckpointError) as e:
            raise UsageError(f"{e}. Once the cause is fixed, {resume_hint}") from None
        finally:
            bar.close()
            log.close()
    t_end = time.time()
    summary = summarize(run, update, (update - start) * config.batch_size * population,
                        Timing(t_end - t0, compile_seconds, t_end - t_train), diverged.message if diverged else None)
    if not (run_dir / LINEAGE_FILE).is_file():  # diverged in the first chunk
        write_json(run_dir / LINEAGE_FILE, lineage_json(lineage(state_lineage(state), plan.space.names), plan, 0))
    summary["pbt"] = pbt_summary(run_dir, summary, plan)
    write_json(run_dir / SUMMARY_FILE, summary)
    if diverged is not None:
        print(f"error: {diverged.message}; the checkpoints before it are kept. A narrower --search range usually "
              "helps", file=sys.stderr, flush=True)
        return EXIT_DIVERGED
    best = summary["pbt"]["best_member"]
    print(summary_line(summary, run_dir, "member"), flush=True)
    if best is not None:
        print(f"Best member {best}: " + ", ".join(f"{n} {_schedule_text(v)}" for n, v in
                                                  summary["pbt"]["best_schedule"].items())
              + f". Lineage: {run_dir / LINEAGE_PLOT}", flush=True)
    if not summary["complete"]:
        print(f"stopped at update {update} of {config.num_updates}; {resume_hint}", flush=True)
    return 0


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


# --------------------------------------------------------------------------------------------------- other commands
def eval_command(cmd: Eval) -> int:
    """Print the returns of `cmd.episodes` episodes of a checkpointed policy; optionally render one to a GIF."""
    import jax
    import numpy as np

    from purejaxppo.runs.policy import load_policy

    _check_positive("episodes", cmd.episodes)
    _check_positive("gif-max-steps", cmd.gif_max_steps)
    loaded = load_policy(cmd.path, seed_index=cmd.seed_index, deterministic=not cmd.sample)
    if cmd.gif is not None:
        from purejaxppo.runs.plotting import check_gif_support

        check_gif_support(loaded.config)  # fail before evaluating
    returns = np.asarray(loaded.evaluate(cmd.episodes, jax.random.key(cmd.eval_seed)))
    mode = "sampled" if cmd.sample else "greedy"
    episodes = f"{cmd.episodes} episode{'s' if cmd.episodes != 1 else ''}"
    print(f"{loaded.config.env_name} (update {loaded.update}, seed {cmd.seed_index}), {episodes}, "
          f"{mode} actions: mean return {returns.mean():.2f} ± {returns.std():.2f} "
          f"(min {returns.min():.2f}, max {returns.max():.2f})")
    print("returns: " + " ".join(f"{r:.2f}" for r in returns))
    if cmd.gif is not None:
        from purejaxppo.runs.plotting import render_gif

        path, steps, ret = render_gif(loaded, cmd.gif, jax.random.key(cmd.eval_seed), cmd.gif_max_steps)
        print(f"wrote {path} ({steps} steps, return {ret:.2f})")
    return 0


def export_command(cmd: Export) -> int:
    """Write the exported policy and its description; print where."""
    from purejaxppo.runs.export import check_out_path, export_policy

    _check_positive("batch-size", cmd.batch_size)
    if cmd.seed_index < 0:
        raise UsageError(f"--seed-index must be >= 0, got {cmd.seed_index}")
    if cmd.out is not None:
        check_out_path(cmd.out, "--out")
    path = export_policy(cmd.path, cmd.format, seed_index=cmd.seed_index, out=cmd.out, batch_size=cmd.batch_size)
    print(f"wrote {path} ({cmd.format}; inputs and outputs described in {path}.json)")
    return 0


def plot_command(cmd: Plot) -> int:
    from purejaxppo.runs.plotting import plot_runs

    if not cmd.runs:
        raise UsageError("plot needs at least one run directory")
    _check_positive("smooth", cmd.smooth)
    out = cmd.out or (Path(cmd.runs[0]) / "learning_curves.png" if len(cmd.runs) == 1 else
                      Path("learning_curves.png"))
    path = plot_runs(cmd.runs, out, cmd.metric, cmd.smooth, cmd.labels, cmd.title)
    print(f"wrote {path}")
    return 0


def compare_command(cmd: Compare) -> int:
    """The comparison table on stdout; a warning on stderr first when the runs are on different environments."""
    if not cmd.runs:
        raise UsageError("compare needs at least one run directory")
    if cmd.csv and cmd.markdown:
        raise UsageError("give --csv or --markdown, not both")
    _check_positive("episodes", cmd.episodes)
    _check_seed(cmd.eval_seed, "eval-seed")
    missing = [f"{run} {'is not a directory' if Path(run).exists() else 'does not exist'}"
               for run in cmd.runs if not Path(run).is_dir()]
    if missing:
        raise UsageError(f"compare takes run directories: {'; '.join(missing)}")
    from purejaxppo.runs.compare import compare_runs, environment_note, format_table

    results = compare_runs(cmd.runs, cmd.episodes, cmd.eval_seed)
    note = environment_note(results)
    if note:
        print(f"warning: {note}", file=sys.stderr, flush=True)
    style = "csv" if cmd.csv else "markdown" if cmd.markdown else "text"
    print(format_table(results, style, cmd.episodes), end="", flush=True)
    return 0


def list_envs_command(cmd: ListEnvs) -> int:
    from purejaxppo.configs import shipped_config_names
    from purejaxppo.envs.registry import NEEDS_NETWORK, SUITES, registered_env_names, suite_installed

    shipped = set(shipped_config_names())
    for name in registered_env_names():
        note = " (downloads data: unusable offline)" if name in NEEDS_NETWORK else ""
        print(f"{'*' if name in shipped else ' '} {name}{note}")
    for name in sorted(n for n in shipped if any(n.startswith(p) for p in SUITES)):
        print(f"* {name}")
    print("* = shipped config (purejaxppo/configs/<env>.toml)")
    print("Other suites (env name <suite>:<name>), each an extra:")
    for prefix in SUITES:
        suite = prefix.rstrip(":")
        print(f"  {suite}: " + ("installed" if suite_installed(prefix) else
                                f"not installed (pip install 'purejaxppo[{suite}]')"))
    return 0


_DISPATCH = {Train: train_command, Pbt: pbt_command, Eval: eval_command, Export: export_command, Plot: plot_command,
             Compare: compare_command, ListEnvs: list_envs_command}


def _run_errors() -> tuple[type[Exception], ...]:
    """`CheckpointError` and `RunWriteError`, from their modules if loaded (only then can they have been raised), so
    that an error in the arguments is reported without importing jax."""
    found = []
    for module, name in (("purejaxppo.runs.checkpoint", "CheckpointError"), ("purejaxppo.runs.logs", "RunWriteError")):
        if module in sys.modules:
            found.append(getattr(sys.modules[module], name))
    return tuple(found)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status: 0 ok, 2 bad input, an unusable checkpoint or a file-system
    fault, 3 training diverged (non-finite values), 130 interrupted."""
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = os.environ.get("PUREJAXPPO_DEBUG", "") not in ("", "0")
    if argv[:1] == ["--version"]:
        from purejaxppo.version import __version__

        print(f"purejaxppo {__version__}")
        return 0
    try:
        cmd = parse(argv)
        return _DISPATCH[type(cmd)](cmd)
    except SystemExit as e:  # --help
        return e.code if isinstance(e.code, int) else 0
    except BrokenPipeError:  # `purejaxppo ... | head`: the reader left; exit quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (ValueError, *_run_errors()) as e:
        if debug:
            raise
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as e:  # a file-system fault not caught closer to its cause
        if debug:
            raise
        where = f"{e.filename}: " if e.filename else ""
        print(f"error: {where}{e.strerror or e}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    raise SystemExit(main())
