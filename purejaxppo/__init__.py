"""purejaxppo: Proximal Policy Optimization in pure JAX, the whole run one jitted `lax.scan`."""

from purejaxppo.config import PPOConfig
from purejaxppo.evaluate import evaluate
from purejaxppo.networks import make_network
from purejaxppo.train import METRIC_NAMES, TrainOutput, TrainState, make_train, make_train_functions

__version__ = "0.1.0"

__all__ = [
    "METRIC_NAMES",
    "PPOConfig",
    "TrainOutput",
    "TrainState",
    "evaluate",
    "make_network",
    "make_train",
    "make_train_functions",
]
