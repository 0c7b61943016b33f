"""driftrank.adapt"""
from .backends import LocalBackend, RayBackend  # noqa: F401  (LAST backends)
from .bench_last import bench_last  # noqa: F401
from .last import LastResult, LastSearch, budget_split  # noqa: F401
