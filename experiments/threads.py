"""torch's thread count, set at the boundaries of work only.

Cells of a grid run side by side on shared cores, so each caps torch's intra-op threads. That
happens in one place per unit of work: the start of a cell (:func:`~.runner.run_cell`), the
driver's preparation step, a CLI command, a benchmark; Ray actors set their own. Library code
(agents, models, training) never sets threads: it runs inside one of those boundaries.
"""

from __future__ import annotations

import os


def set_torch_threads(threads: int) -> None:
    """Cap torch (and OpenMP, for libraries started later) at ``threads`` threads."""
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency; numpy-only agents still run
        return
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
