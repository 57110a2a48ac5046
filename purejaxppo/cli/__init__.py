"""The ``purejaxppo`` command line (also ``python -m purejaxppo``): train, pbt, sweep, eval, export, plot, compare,
list-envs.

    purejaxppo train                                   # CartPole-v1, its shipped config, 1 seed
    purejaxppo train --env Breakout-MinAtar --num-seeds 4 --learning-rate 3e-4 --checkpoint-every 100
    purejaxppo train --config-file my.toml --config.gamma 0.995 --logdir runs/mine
    purejaxppo train --resume runs/mine                # continue a stopped or killed run, bit-identically
    purejaxppo pbt --env Pendulum-v1 --population 8 --search learning_rate=1e-4:3e-3 entropy_coeff=0,0.01
    purejaxppo sweep --env CartPole-v1 --grid learning_rate=1e-4,3e-4 --grid entropy_coeff=0,0.01 --num-seeds 4
    purejaxppo eval runs/mine --episodes 100 [--sample] [--gif cartpole.gif]
    purejaxppo export runs/mine --format onnx [--seed-index 0] [--out policy.onnx]
    purejaxppo plot runs/a runs/b --out curves.png
    purejaxppo compare runs/a runs/b [--episodes 32] [--csv | --markdown]
    purejaxppo list-envs
    purejaxppo --version

Why tyro: every command is a typed dataclass (in `cli.args`), and tyro builds the parser, the type conversion, the
choices and the ``--help`` text from the field types and their docstrings, so the command line cannot drift from the
code and no parser is written by hand. Every `PPOConfig` field is also a flag (``--learning-rate``, also accepted as
``--config.learning-rate`` and with underscores), generated from `PPOConfig`'s source (`purejaxppo.configfields`:
nothing here imports jax until a command runs, so ``--help`` and a bad flag answer at once). A flag left out keeps
the value of the env's shipped config (or of the config file); ``train --print-config`` shows the result.
``--env-name`` is ``--env``.

Errors in the input (a bad flag, a bad value, a value `PPOConfig` rejects, an unusable checkpoint) and file-system
faults (an unwritable --logdir, a full disk) are printed as one line, ``error: ...``, naming the flag, field or file
and what is allowed, with exit status 2 and no traceback; everything that can be checked is checked before the run
directory is created. Training that goes non-finite (NaN or infinite losses, gradients or parameters) stops at that
update with exit status 3, keeping the checkpoints saved before it. A host environment (``envpool:``,
``gymnasium:``) that raises mid-run is one ``error:`` line too (exit status 2) naming it, its host step and the
checkpoint kept. Set ``PUREJAXPPO_DEBUG=1`` to get the traceback instead.

A run directory is locked while it trains (`purejaxppo.runs.runlock`): a second process is refused, naming the holder's
pid; the lock file is removed on exit, and one left by a killed process is taken over with a warning. Resuming picks
the newest checkpoint that reads back intact (a corrupt one is moved aside with a warning) and leaves a finished run
untouched.

The package's modules, from the bottom: `args` (the command dataclasses, PPOConfig's fields as flags, `parse`),
`plans` (a run resolved from the flags or read back for --resume), `runloop` (the chunked run loop shared by train
and pbt, summary.json), `train` and `pbt` (the two training commands over the run loop), `sweep` (settings x seeds
in one program, a run directory per setting), `commands` (eval, export,
plot, compare, list-envs) and this module (`main` and the table of commands).

May import: everything below it (runs, scale, training, models, config, envs, core) and `purejaxppo.configfields`; at
module level only tyro and configfields, the rest (which imports jax) inside the command functions, so that --help and
a bad flag answer without importing jax.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from purejaxppo.cli.args import (
    EXIT_DIVERGED,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    Compare,
    Eval,
    Export,
    ListEnvs,
    Pbt,
    Plot,
    Sweep,
    Train,
    UsageError,
    parse,
)
from purejaxppo.cli.commands import compare_command, eval_command, export_command, list_envs_command, plot_command
from purejaxppo.cli.pbt import pbt_command
from purejaxppo.cli.plans import requested_config
from purejaxppo.cli.runloop import summary_line
from purejaxppo.cli.sweep import sweep_command
from purejaxppo.cli.train import train_command

__all__ = ["COMMANDS", "EXIT_DIVERGED", "EXIT_INTERRUPTED", "EXIT_USAGE", "UsageError", "main", "parse",
           "requested_config", "summary_line"]

COMMANDS = {Train: train_command, Pbt: pbt_command, Sweep: sweep_command, Eval: eval_command, Export: export_command,
            Plot: plot_command, Compare: compare_command, ListEnvs: list_envs_command}  # a parsed command's function
COMPILING = (Train, Pbt, Sweep, Eval, Export, Compare)  # they compile programs: the persistent cache goes on first


def _run_errors() -> tuple[type[Exception], ...]:
    """`CheckpointError` and `RunWriteError`, from their modules if loaded (only then can they have been raised), so
    that an error in the arguments is reported without importing jax."""
    found = []
    for module, name in (("purejaxppo.runs.checkpoint", "CheckpointError"), ("purejaxppo.runs.logs", "RunWriteError")):
        if module in sys.modules:
            found.append(getattr(sys.modules[module], name))
    return tuple(found)


def join_processes(hosts) -> None:
    """Several processes (--coordinator-address ... or --distributed): join them through jax.distributed."""
    from purejaxppo.scale.processes import HostSpec, start

    start(HostSpec(hosts.coordinator_address, hosts.num_processes, hosts.process_id, hosts.distributed,
                   hosts.heartbeat_timeout))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status: 0 ok, 2 bad input, an unusable checkpoint or a file-system
    fault, 3 training diverged (non-finite values), 4 another process of a several-process run was lost
    (`purejaxppo.scale.processes.EXIT_PEER_LOST`), 130 interrupted."""
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = os.environ.get("PUREJAXPPO_DEBUG", "") not in ("", "0")
    if argv[:1] == ["--version"]:
        from purejaxppo.version import __version__

        print(f"purejaxppo {__version__}")
        return 0
    try:
        cmd = parse(argv)
        if isinstance(cmd, COMPILING):  # jax is not imported yet (but in tests and in Python callers of main)
            from purejaxppo.runs.compile_cache import enable, quiet_xla_log

            quiet_xla_log()
            enable()
        if hasattr(cmd, "hosts"):  # before JAX starts its backend
            join_processes(cmd.hosts)
        return COMMANDS[type(cmd)](cmd)
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
