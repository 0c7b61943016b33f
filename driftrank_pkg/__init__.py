"""driftrank: a re-ranking simulator for studying serving-time adaptation.

Sub-packages (each a top-level folder of the repository):

- ``driftrank.envs``        the world and its Gymnasium environments (numpy only)
- ``driftrank.evaluator``   the list-wise click model (torch)
- ``driftrank.generator``   the autoregressive slate generator (torch)
- ``driftrank.adapt``       ErrorMemory (ReLoop2), LAST perturbation search, backends
- ``driftrank.agents``      agent contract, registry and built-in agents
- ``driftrank.experiments`` runner, Ray grid, report, CLI, benchmarks
"""

__version__ = "0.1.0"
