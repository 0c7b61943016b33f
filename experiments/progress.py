"""Progress bars with an honest ETA.

tqdm's own estimate smooths over update times, so a grid whose first cells land together (Ray)
or after a long preparation promised seconds while it sat for minutes. :class:`CellProgress`
estimates from what has finished only: time since the first cell was started divided by cells
finished, times cells left; before any cell has finished it says so (``eta ?``). Preparation
(pretraining) has its own bar and is never part of a cell's time.
"""

from __future__ import annotations

import time


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


class CellProgress:
    """A bar over ``total`` items of work with an ETA from finished items."""

    def __init__(self, total: int, enabled: bool, desc: str, unit: str = "cell"):
        from tqdm.auto import tqdm

        self.total, self.done, self.failed = total, 0, 0
        self.start = time.perf_counter()
        self.bar = tqdm(total=total, desc=desc, unit=unit, disable=not enabled,
                        dynamic_ncols=True,
                        bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]")
        self.bar.set_postfix_str("eta ?", refresh=False)

    def eta_s(self) -> float | None:
        """Seconds left at the mean pace of finished items; None before the first."""
        if not self.done:
            return None
        return (time.perf_counter() - self.start) / self.done * (self.total - self.done)

    def finished(self, failed: bool = False) -> None:
        self.done += 1
        self.failed += failed
        eta = self.eta_s()
        text = f"eta {_clock(eta)}" if eta is not None else "eta ?"
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
