"""What one grid run did: :class:`GridSummary`, failure records and :class:`GridError`."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from . import store
from .cell import CellSpec


@dataclass
class GridSummary:
    """What one :func:`~.grid.run_grid` call did."""

    run_dir: Path
    launcher: str
    total: int  # cells in the grid
    skipped: list[str] = field(default_factory=list)  # finished before this call
    completed: list[str] = field(default_factory=list)  # finished by this call
    failed: list[dict] = field(default_factory=list)  # failure records (see failed/*.json)
    retried: list[dict] = field(default_factory=list)  # finished after failed attempts
    wall_s: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed

    def __str__(self) -> str:
        text = (f"{self.total} cells: {len(self.completed)} run, {len(self.skipped)} already "
                f"done, {len(self.failed)} failed ({self.launcher}, {self.wall_s:.1f} s) -> "
                f"{self.run_dir}")
        for r in self.retried:
            text += (f"\n  RETRIED {r['cell_id']}: finished on attempt {r['attempts']} after "
                     f"{r['errors'][0]}")
        for f in self.failed:
            text += f"\n  FAILED {f['cell_id']} after {f['attempts']} attempt(s): {f['error']}"
        if self.failed:
            text += f"\n  tracebacks: {Path(self.run_dir) / store.FAILED}/<cell_id>.json"
        return text


class GridError(RuntimeError):
    """Every cell of the grid failed; ``summary`` says how."""

    def __init__(self, message: str, summary: GridSummary):
        super().__init__(message)
        self.summary = summary


def one_line(exc: BaseException) -> str:
    """``Type: first line`` of an exception (the original one of a Ray task error)."""
    cause = getattr(exc, "cause", None)  # ray.exceptions.RayTaskError carries the original
    if isinstance(cause, BaseException):
        exc = cause
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def failure_record(cell: CellSpec, launcher: str, stage: str,
                   errors: list[tuple[str, str]]) -> dict:
    """What ``failed/<cell_id>.json`` holds: the cell, every attempt's error, the traceback."""
    return {
        "cell_id": cell.cell_id,
        "label": cell.label,
        "scenario": cell.scenario,
        "seed": cell.seed,
        "cell": cell.to_dict(),
        "launcher": launcher,
        "stage": stage,
        "attempts": len(errors),
        "error": errors[-1][0],
        "traceback": errors[-1][1],
        "errors": [e for e, _ in errors],
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
    }
