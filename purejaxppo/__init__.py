"""purejaxppo: Proximal Policy Optimization in pure JAX, the whole run one jitted `lax.scan`."""

from purejaxppo.checkpoint import LoadedPolicy, load_policy
from purejaxppo.config import PPOConfig
from purejaxppo.evaluation import evaluate
from purejaxppo.metrics import METRIC_NAMES
from purejaxppo.policies import Policy, make_policy
from purejaxppo.sweeps import SweepResult, sweep
from purejaxppo.train import RunState, Setup, TrainOutput, make_setup, make_train, make_train_functions
from purejaxppo.trainer import PPOTrainer
from purejaxppo.version import __version__

__all__ = [
    "METRIC_NAMES",
    "LoadedPolicy",
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
    "sweep",
]
