"""driftrank: a re-ranking simulator for studying serving-time adaptation.

A Gymnasium environment streams requests from users whose tastes drift; agents re-rank each
request's candidates into a slate; the runner records per-window reward, regret and latency so
that adapting at serving time (LAST, ReLoop2) can be compared with retraining and online RL.

First steps::

    import gymnasium as gym
    import driftrank

    env = gym.make(driftrank.ENV_ID, scenario="abrupt-shift", max_steps=500)
    frame = driftrank.run_cell({"scenario": "abrupt-shift", "agent": "static", "seed": 0,
                                "requests": 4096})
    driftrank.available_agents()          # built-in and plugin agents

Sub-packages (each a top-level folder of the repository, which is itself the package):

- ``driftrank.envs``        the world and its Gymnasium environments (numpy only)
- ``driftrank.evaluator``   the list-wise click model (torch)
- ``driftrank.generator``   the autoregressive slate generator (torch)
- ``driftrank.adapt``       ErrorMemory (ReLoop2), LAST perturbation search, backends
- ``driftrank.agents``      agent lifecycle, registry and built-in agents
- ``driftrank.experiments`` runner, Ray grid, report, study, CLI, benchmarks

The names below are loaded on first use, so ``import driftrank.envs`` stays free of torch.
"""

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "ENV_ID": ".envs",
    "make_agent": ".agents",
    "available_agents": ".agents",
    "register_agent": ".agents",
    "BaseAgent": ".agents",
    "AgentContext": ".agents",
    "CellSpec": ".experiments.runner",
    "run_cell": ".experiments.runner",
    "GridSpec": ".experiments.grid",
    "run_grid": ".experiments.grid",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'driftrank' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
