"""Let the process reuse the memory it frees instead of handing it back to the system.

Why: serving a batch of a few hundred requests makes tensors of one to twenty MB (candidate
states, per-step logits, the evaluator's activations), allocated and freed many times per
call. glibc's ``malloc`` serves blocks above its mmap threshold with fresh ``mmap`` and returns
them with ``munmap`` on free, and trims the heap top back to the system, so every call
page-faults its way through memory it already had: at batch 256 the faults cost as much as
some of the arithmetic. Raising the mmap threshold to glibc's maximum (32 MiB on 64-bit) and
the trim threshold makes freed blocks come back from the heap.

Process-wide and harmless elsewhere (the heap keeps its peak size); a no-op off glibc.
Called once where serving-time search runs: the search agents, their Ray actors and the
benchmark.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

__all__ = ["reuse_freed_memory"]

_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
_MMAP_THRESHOLD_MAX = 32 << 20  # glibc's DEFAULT_MMAP_THRESHOLD_MAX on 64-bit
_state: dict[str, bool] = {}


def reuse_freed_memory() -> bool:
    """Apply the malloc settings once per process; True when they are in effect."""
    if "done" in _state:
        return _state["done"]
    ok = False
    if sys.platform.startswith("linux"):
        try:
            mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
            mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
            ok = all(mallopt(param, value) == 1 for param, value in (
                (_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX),
                (_M_TRIM_THRESHOLD, 1 << 30),
                (_M_TOP_PAD, 64 << 20)))
        except (OSError, AttributeError):  # not glibc
            ok = False
    _state["done"] = ok
    return ok
