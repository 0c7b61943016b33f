"""Running a grid's cells: one retry-and-record loop, two launchers.

:class:`CellRecorder` is the rule both launchers follow: a finished cell is written atomically
as soon as it arrives (``cells/<cell_id>.parquet``); a failed attempt is retried until
``retries`` extra attempts are spent, then recorded in ``failed/<cell_id>.json`` with every
attempt's error and the last traceback; a cell that finished after failing is listed as
retried. :func:`run_serial` runs cells one after another in this process;
:func:`~.launch_ray.run_ray` runs them as Ray tasks.
"""

from __future__ import annotations

import time
import traceback
from pathlib import Path

import pandas as pd

from . import store
from .cell import CellSpec
from .grid_summary import GridSummary, failure_record, one_line
from .progress import CellProgress
from .runner import run_cell


class CellRecorder:
    """Records outcomes of cell attempts into the run folder, the summary and the bar."""

    def __init__(self, run_dir: Path, launcher: str, retries: int, summary: GridSummary,
                 bar: CellProgress):
        self.run_dir, self.launcher, self.retries = run_dir, launcher, retries
        self.summary, self.bar = summary, bar
        self.errors: dict[str, list[tuple[str, str]]] = {}

    def finished(self, cell: CellSpec, df: pd.DataFrame) -> None:
        store.write_cell(self.run_dir, cell.cell_id, df)
        self.summary.completed.append(cell.cell_id)
        errors = self.errors.pop(cell.cell_id, [])
        if errors:
            self.summary.retried.append({"cell_id": cell.cell_id, "attempts": len(errors) + 1,
                                         "errors": [e for e, _ in errors]})
        self.bar.finished(kind=cell.label, seconds=cell_seconds(df))

    def failed(self, cell: CellSpec, exc: BaseException, trace: str) -> bool:
        """Note a failed attempt; True if the cell should be tried again."""
        errors = self.errors.setdefault(cell.cell_id, [])
        errors.append((one_line(exc), trace))
        if len(errors) <= self.retries:
            return True
        record = failure_record(cell, self.launcher, "run", self.errors.pop(cell.cell_id))
        store.write_failure(self.run_dir, cell.cell_id, record)
        self.summary.failed.append(record)
        self.bar.finished(failed=True, kind=cell.label)
        return False


def timed_cell(cell: CellSpec, cache_dir, threads: int) -> pd.DataFrame:
    """:func:`run_cell` with its whole wall time (agent construction included) in
    ``df.attrs["cell_wall_s"]``, which the progress bar's ETA reads (it travels with the
    frame from a Ray worker; it is not a result column)."""
    t0 = time.perf_counter()
    df = run_cell(cell, cache_dir=cache_dir, threads=threads)
    df.attrs["cell_wall_s"] = time.perf_counter() - t0
    return df


def cell_seconds(df: pd.DataFrame) -> float | None:
    """A finished cell's wall seconds (:func:`timed_cell`); None when it was not timed."""
    seconds = df.attrs.get("cell_wall_s")
    return None if seconds is None else float(seconds)


def run_serial(todo: list[CellSpec], recorder: CellRecorder, cache_dir: Path,
               threads: int) -> None:
    """Every cell in this process, one after another."""
    for cell in todo:
        while True:
            try:
                df = timed_cell(cell, cache_dir, threads)
            except Exception as exc:
                if recorder.failed(cell, exc, traceback.format_exc()):
                    continue
            else:
                df["node_id"] = "local"
                recorder.finished(cell, df)
            break
