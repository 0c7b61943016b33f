"""driftrank.generator: the autoregressive slate generator (torch).

A pointer policy that builds a slate position by position; warm-started by imitation of the
logs, then trained by policy gradient against the evaluator. ``encode``/``decode`` are split so
that LAST can perturb activations (h0, encoder states) or a parameter subset per request.
May import ``driftrank.evaluator`` (reward model, shared helpers), never the reverse.
"""

from .checkpoint import CheckpointError, load, save
from .config import GeneratorConfig
from .imitation import imitation_targets, train_imitation
from .model import SlateGenerator
from .policy_gradient import reward_to_go, train_policy_gradient

__all__ = [
    "CheckpointError",
    "GeneratorConfig",
    "SlateGenerator",
    "imitation_targets",
    "load",
    "reward_to_go",
    "save",
    "train_imitation",
    "train_policy_gradient",
]
