"""driftrank.adapt: adaptation mechanisms that are not agents.

- :class:`ErrorMemory` (ReLoop2): an LSH sketch of recent prediction errors, O(1) per sample.
- :class:`CompensatedEvaluator`: a frozen evaluator whose outputs the memory corrects;
  :func:`compare_by_slot` measures it slot by slot on any labelled stream.
- :class:`LastSearch` (LAST): per-request perturbation search around a frozen generator, with
  :class:`LocalBackend` (one batched torch computation) and :class:`RayBackend` (actor pool).
"""

from .backends import LocalBackend
from .compensated import CompensatedEvaluator
from .compensation_study import compare_by_slot
from .error_memory import ErrorMemory, MemoryReadout
from .last import LastSearch
from .last_result import LastResult
from .ray_backend import RayBackend
from .requests import budget_split

__all__ = [
    "CompensatedEvaluator",
    "ErrorMemory",
    "LastResult",
    "LastSearch",
    "LocalBackend",
    "MemoryReadout",
    "RayBackend",
    "budget_split",
    "compare_by_slot",
]
