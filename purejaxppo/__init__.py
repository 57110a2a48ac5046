"""purejaxppo: Proximal Policy Optimization in pure JAX, the whole run one jitted `lax.scan`."""

from purejaxppo.checkpoint import load_policy
from purejaxppo.config import PPOConfig
from purejaxppo.evaluate import evaluate
from purejaxppo.networks import make_network
from purejaxppo.sweep import SweepResult, sweep
from purejaxppo.train import METRIC_NAMES, TrainOutput, TrainState, make_train, make_train_functions
from purejaxppo.trainer import PPOTrainer

__version__ = "0.1.0"

__all__ = [
    "METRIC_NAMES",
    "PPOConfig",
    "PPOTrainer",
    "SweepResult",
    "TrainOutput",
    "TrainState",
    "evaluate",
    "load_policy",
    "make_network",
    "make_train",
    "make_train_functions",
    "sweep",
]
