"""Progress bars with an honest ETA.

tqdm's own estimate smooths over update times, so a grid whose first cells land together (Ray)
or after a long preparation promised seconds while it sat for minutes. :class:`CellProgress`
estimates from what has finished only; before anything has finished it says so (``eta ?``).
Preparation (pretraining) has its own bar and is never part of a cell's time.

Cells of one grid differ in cost by two orders of magnitude (an oracle cell takes a second, a
LAST cell a minute), and the cheap ones tend to finish first, so a mean pace over finished
cells promised too little. When the items have kinds (a cell's agent and config) and each
finished item reports its wall seconds, the work left is estimated per kind (the mean of that
kind's finished items; a kind with none yet counts as the slowest kind seen, and the ETA
is then shown as a lower bound, ``eta >mm:ss``) and shared over
the ``slots`` that run at once (1 serially, the cluster's cells-at-a-time on Ray), but never
less than the longest single item left.
"""

from __future__ import annotations

import math
import time
from collections import Counter


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


class CellProgress:
    """A bar over ``total`` items of work with an ETA from finished items."""

    def __init__(self, total: int, enabled: bool, desc: str, unit: str = "cell",
                 kinds: list[str] | None = None, slots: int = 1):
        from tqdm.auto import tqdm

        if kinds is not None and len(kinds) != total:
            raise ValueError(f"kinds has {len(kinds)} entries for {total} items")
        self.total, self.done, self.failed = total, 0, 0
        self.left = Counter(kinds or ())  # items of each kind not finished yet
        self.seconds: dict[str, list[float]] = {}  # wall seconds of finished items, by kind
        self.slots = max(1, int(slots))  # items that run at once (a launcher may set it later)
        self.start = time.perf_counter()
        self.bar = tqdm(total=total, desc=desc, unit=unit, disable=not enabled,
                        dynamic_ncols=True,
                        bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]")
        self.bar.set_postfix_str("eta ?", refresh=False)

    def eta_s(self) -> float | None:
        """Seconds left; None before the first item has finished (see the module doc)."""
        if not self.done:
            return None
        if not self.seconds or not self.left:  # no kinds or timings: the mean pace so far
            return (time.perf_counter() - self.start) / self.done * (self.total - self.done)
        mean = {k: sum(v) / len(v) for k, v in self.seconds.items()}
        slowest = max(mean.values())
        cost = {k: mean.get(k, slowest) for k in self.left}
        work_left = sum(n * cost[k] for k, n in self.left.items())
        return max(work_left / self.slots, max(cost.values()))

    def unseen_kinds(self) -> bool:
        """Some items left are of a kind none of which has finished: the ETA is a lower bound
        (shown as ``eta >mm:ss``)."""
        return bool(self.seconds) and any(k not in self.seconds for k in self.left)

    def finished(self, failed: bool = False, kind: str | None = None,
                 seconds: float | None = None) -> None:
        """One item done; ``kind`` and its wall ``seconds`` refine the estimate."""
        self.done += 1
        self.failed += failed
        if kind is not None and self.left[kind] > 0:
            self.left[kind] -= 1
            if not self.left[kind]:
                del self.left[kind]
            if seconds is not None and math.isfinite(seconds) and seconds >= 0.0:
                self.seconds.setdefault(kind, []).append(float(seconds))
        eta = self.eta_s()
        text = f"eta {'>' if self.unseen_kinds() else ''}{_clock(eta)}" if eta is not None \
            else "eta ?"
        if self.failed:
            text += f", failed {self.failed}"
        self.bar.set_postfix_str(text, refresh=False)
        self.bar.update(1)

    def refresh(self) -> None:
        self.bar.refresh()

    def __enter__(self) -> CellProgress:
        return self

    def __exit__(self, *exc) -> None:
        self.bar.close()
