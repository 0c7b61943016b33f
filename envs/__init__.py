"""driftrank.envs: the simulated world and its Gymnasium environments.

numpy, with numba kernels for the per-request loops (``kernels.py``); never torch.

Importing this package registers ``driftrank/Rerank-v0`` (single request per step, with
``VectorRerankEnv`` as its ``vector_entry_point``).
"""

import gymnasium as _gym

from .config import WorldConfig
from .rerank_env import RerankEnv
from .scenarios import DESCRIPTIONS, make_config, scenario_names
from .types import ClickReports, Conversions, Feedback
from .vector_env import VectorRerankEnv
from .world import World
from .wrappers import ScoreActionWrapper, top_k_slate

ENV_ID = "driftrank/Rerank-v0"

if ENV_ID not in _gym.registry:
    _gym.register(
        id=ENV_ID,
        entry_point="driftrank.envs.rerank_env:RerankEnv",
        vector_entry_point="driftrank.envs.vector_env:VectorRerankEnv",
    )

__all__ = [
    "ENV_ID",
    "ClickReports",
    "Conversions",
    "DESCRIPTIONS",
    "Feedback",
    "RerankEnv",
    "ScoreActionWrapper",
    "VectorRerankEnv",
    "World",
    "WorldConfig",
    "make_config",
    "scenario_names",
    "top_k_slate",
]
