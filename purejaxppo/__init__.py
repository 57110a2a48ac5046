"""purejaxppo: Proximal Policy Optimization in pure JAX, the whole run one jitted `lax.scan`.

The public names below are imported on first use (PEP 562 module `__getattr__`), so ``import purejaxppo`` and the
command line's ``--help`` do not pay for importing jax; ``from purejaxppo import make_train`` works as usual.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING, Any

from purejaxppo.version import __version__

if TYPE_CHECKING:  # for type checkers and IDEs; at run time `__getattr__` imports them
    from purejaxppo.runs.policy import LoadedPolicy, load_policy, save_run
    from purejaxppo.config import PPOConfig
    from purejaxppo.training.evaluation import evaluate
    from purejaxppo.scale.population import PBTResult, pbt
    from purejaxppo.training.metrics import METRIC_NAMES
    from purejaxppo.models.policies import Policy, make_policy
    from purejaxppo.scale.sweeps import SweepResult, sweep
    from purejaxppo.training.train import RunState, Setup, TrainOutput, make_setup, make_train, make_train_functions
    from purejaxppo.training.trainer import PPOTrainer

# public name -> the module that defines it
_PUBLIC = {
    "LoadedPolicy": "runs.policy", "load_policy": "runs.policy", "save_run": "runs.policy",
    "PPOConfig": "config",
    "evaluate": "training.evaluation",
    "METRIC_NAMES": "training.metrics",
    "Policy": "models.policies", "make_policy": "models.policies",
    "PBTResult": "scale.population", "pbt": "scale.population",
    "SweepResult": "scale.sweeps", "sweep": "scale.sweeps",
    "RunState": "training.train", "Setup": "training.train", "TrainOutput": "training.train", "make_setup": "training.train", "make_train": "training.train",
    "make_train_functions": "training.train",
    "PPOTrainer": "training.trainer",
}

__all__ = [  # the names of _PUBLIC, and __version__
    "METRIC_NAMES",
    "LoadedPolicy",
    "PBTResult",
    "PPOConfig",
    "PPOTrainer",
    "Policy",
    "RunState",
    "Setup",
    "SweepResult",
    "TrainOutput",
    "__version__",
    "evaluate",
    "load_policy",
    "make_policy",
    "make_setup",
    "make_train",
    "make_train_functions",
    "pbt",
    "save_run",
    "sweep",
]


def __getattr__(name: str) -> Any:
    """Import a public name's module on first use (and cache the name here); a submodule's name imports it, so
    ``import purejaxppo; purejaxppo.configs.load_config(...)`` works too."""
    module = _PUBLIC.get(name)
    if module is None:
        if not name.startswith("_") and importlib.util.find_spec(f"purejaxppo.{name}") is not None:
            return importlib.import_module(f"purejaxppo.{name}")  # sets the attribute itself
        raise AttributeError(f"module 'purejaxppo' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"purejaxppo.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
