"""The results store of a grid run: one folder, written atomically, safe to interrupt.

Layout of ``RUN_DIR``::

    grid.json                 the grid's spec (what ``driftrank grid`` was asked to run)
    cells/<cell_id>.parquet   one finished cell: the runner's per-window DataFrame
    failed/<cell_id>.json     a cell that failed after its retries: spec, error, traceback

Every file is written to a temporary name in the same folder and moved into place with
``os.replace``, so a reader (or a re-run after ``kill -9``) sees either the whole file or none
of it. A cell counts as finished exactly when its parquet file exists; a re-run skips it.
One driver per run folder at a time. Reading a whole run back is :mod:`.results`'s job.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

GRID_FILE = "grid.json"
CELLS = "cells"
FAILED = "failed"
_TMP_PREFIX = ".tmp-"


def _atomic_write(path: Path, write) -> None:
    """Call ``write(tmp_path)`` then move ``tmp_path`` onto ``path`` atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX + path.name + ".", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; results are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # persist the rename itself (best effort)
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def write_json(path: str | Path, data: Any) -> None:
    text = json.dumps(data, indent=2, sort_keys=True, default=str) + "\n"
    _atomic_write(Path(path), lambda tmp: tmp.write_text(text))


def cell_path(run_dir: str | Path, cell_id: str) -> Path:
    return Path(run_dir) / CELLS / f"{cell_id}.parquet"


def failed_path(run_dir: str | Path, cell_id: str) -> Path:
    return Path(run_dir) / FAILED / f"{cell_id}.json"


def write_cell(run_dir: str | Path, cell_id: str, df: pd.DataFrame) -> Path:
    """Store a finished cell atomically and clear any earlier failure record of it."""
    path = cell_path(run_dir, cell_id)
    _atomic_write(path, lambda tmp: df.to_parquet(tmp, index=False))
    with contextlib.suppress(FileNotFoundError):
        failed_path(run_dir, cell_id).unlink()
    return path


def write_failure(run_dir: str | Path, cell_id: str, record: dict) -> Path:
    path = failed_path(run_dir, cell_id)
    write_json(path, record)
    return path


def finished_cells(run_dir: str | Path) -> set[str]:
    """Ids of the cells whose results are stored."""
    folder = Path(run_dir) / CELLS
    if not folder.is_dir():
        return set()
    return {p.stem for p in folder.glob("*.parquet") if not p.name.startswith(_TMP_PREFIX)}


def load_failures(run_dir: str | Path) -> list[dict]:
    """Failure records (``failed/*.json``) of cells that have no stored result."""
    folder = Path(run_dir) / FAILED
    if not folder.is_dir():
        return []
    done = finished_cells(run_dir)
    out = []
    for p in sorted(folder.glob("*.json")):
        if p.name.startswith(_TMP_PREFIX) or p.stem in done:
            continue
        out.append(json.loads(p.read_text()))
    return out


def remove_stale_temp_files(run_dir: str | Path) -> int:
    """Delete temporary files left by a driver that was killed mid-write; return how many."""
    n = 0
    for sub in (CELLS, FAILED, "."):
        folder = Path(run_dir) / sub
        if folder.is_dir():
            for p in folder.glob(_TMP_PREFIX + "*"):
                with contextlib.suppress(OSError):
                    p.unlink()
                    n += 1
    return n


def write_grid_spec(run_dir: str | Path, spec_dict: dict) -> None:
    write_json(Path(run_dir) / GRID_FILE, spec_dict)


def read_grid_spec(run_dir: str | Path) -> dict | None:
    path = Path(run_dir) / GRID_FILE
    if not path.is_file():
        return None
    return json.loads(path.read_text())
