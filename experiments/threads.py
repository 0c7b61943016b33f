"""Process settings, made at the boundaries of work only: torch's thread count, and how the C
allocator treats freed memory.

Cells of a grid run side by side on shared cores, so each caps torch's intra-op threads. That
happens in one place per unit of work: the start of a cell (:func:`~.runner.run_cell`), the
driver's preparation step, a CLI command, a benchmark; Ray actors set their own. Library code
(agents, models, training) never sets threads: it runs inside one of those boundaries.

The same boundaries ask glibc's malloc to keep freed memory (:func:`keep_freed_memory`): a
batch of requests makes torch allocate and free the same large temporaries at every call, and
by default glibc gives blocks above its mmap threshold back to the system and trims the top of
its heap, so every call faults the same pages in again, zeroed. Keeping them costs the
process its peak heap; it changes no number, only where blocks live.
"""

from __future__ import annotations

import ctypes
import os

#: glibc's ``mallopt`` parameters (malloc.h) and the values set
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD = 32 << 20  # glibc's ceiling: blocks below it come from the heap
TRIM_THRESHOLD = 1 << 30  # give heap memory back only above 1 GiB of free top


def set_torch_threads(threads: int) -> None:
    """Cap torch (and OpenMP, for libraries started later) at ``threads`` threads."""
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency; numpy-only agents still run
        return
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def keep_freed_memory() -> bool:
    """Ask glibc's malloc to serve blocks under 32 MB from its heap and to keep freed heap
    memory (see the module docstring). True if the C library took both settings; False where
    it has no ``mallopt`` (macOS) or refused one, which leaves the defaults: slower, not wrong."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))


def start_of_work(threads: int) -> None:
    """The settings of a unit of work (a cell, a probe, a command, a benchmark): torch threads
    and the allocator's handling of freed memory."""
    set_torch_threads(threads)
    keep_freed_memory()
